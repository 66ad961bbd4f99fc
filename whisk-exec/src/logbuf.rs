//! The captured output of one runtime process or container, split into activations at the
//! sentinels.
//!
//! The buffer is bounded: it holds at most [`LogBuffer::max_bytes`] of lines (16 MB by
//! default, more than the largest `limits.logs` of 10 MB, so the pool's truncation still
//! decides what an activation keeps). Lines arriving while it is full are dropped and
//! counted; sentinel lines are never dropped, so activations still end. Lines longer than
//! [`MAX_LINE`] are split. An action that prints gigabytes costs the platform CPU, not memory.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;
use whisk_core::logs::{LogLine, Stream, SENTINEL};

/// The default bound of a container's buffered log text.
pub(crate) const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Longer lines are split into pieces of this size.
pub(crate) const MAX_LINE: usize = 1024 * 1024;
/// Bytes read from a container's output stream at a time.
const READ_CHUNK: usize = 4 * 1024;
/// What a buffered line costs beyond its text (the `LogLine` and its allocation).
const LINE_OVERHEAD: usize = 64;

#[derive(Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    /// Bytes held in `lines`, counting [`LINE_OVERHEAD`] per line.
    held: usize,
    /// Whether stdout and stderr reached end of file.
    closed_out: bool,
    closed_err: bool,
    /// Streams that reached end of file.
    closed: usize,
    /// Bytes of text dropped because the buffer was full.
    dropped: u64,
}

/// Lines read from a process's stdout and stderr, in arrival order.
pub(crate) struct LogBuffer {
    inner: Mutex<Inner>,
    changed: Notify,
    max_bytes: usize,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }
}

fn cost(line: &LogLine) -> usize {
    line.message.len() + LINE_OVERHEAD
}

impl LogBuffer {
    /// A buffer holding at most `max_bytes` of lines.
    pub(crate) fn with_max_bytes(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::default(),
            changed: Notify::new(),
            max_bytes,
        }
    }

    /// The bound of buffered log text.
    #[allow(dead_code)]
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bytes of output dropped so far because the buffer was full.
    #[allow(dead_code)]
    pub(crate) fn dropped_bytes(&self) -> u64 {
        self.inner.lock().unwrap().dropped
    }

    /// Reads `reader` line by line into the buffer until end of file (or a read error).
    pub(crate) async fn capture(&self, reader: impl AsyncRead + Unpin, stream: Stream) {
        // Small: every warm container holds two of these for its whole life, and most
        // actions log little (a long line is assembled in `line` across reads anyway).
        let mut reader = BufReader::with_capacity(READ_CHUNK, reader);
        let mut line = Vec::new();
        loop {
            let used = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(buf) => {
                    self.feed(stream, &mut line, buf);
                    buf.len()
                }
            };
            reader.consume(used);
        }
        self.close(stream, line);
    }

    /// Adds the complete lines of `chunk`, the next bytes of `stream` (from a pipe or from a
    /// multiplexed log stream such as Docker's). `line` holds the stream's unfinished line
    /// between chunks; lines reaching [`MAX_LINE`] are split.
    pub(crate) fn feed(&self, stream: Stream, line: &mut Vec<u8>, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let room = MAX_LINE - line.len();
            let (used, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) if i <= room => {
                    line.extend_from_slice(&chunk[..i]);
                    (i + 1, true)
                }
                _ => {
                    let n = chunk.len().min(room);
                    line.extend_from_slice(&chunk[..n]);
                    (n, line.len() >= MAX_LINE)
                }
            };
            chunk = &chunk[used..];
            if complete {
                self.push(stream, line);
                line.clear();
            }
        }
    }

    /// Marks `stream` as ended (end of file), adding its unfinished `line` if any.
    pub(crate) fn close(&self, stream: Stream, line: Vec<u8>) {
        if !line.is_empty() {
            self.push(stream, &line);
        }
        {
            let mut inner = self.inner.lock().unwrap();
            inner.closed += 1;
            match stream {
                Stream::Stdout => inner.closed_out = true,
                Stream::Stderr => inner.closed_err = true,
            }
        }
        self.changed.notify_waiters();
    }

    /// Adds one line (without its newline). Lines that end with the sentinel (the sentinel
    /// itself, or one tagged with an activation id) are kept even when the buffer is full.
    fn push(&self, stream: Stream, mut bytes: &[u8]) {
        while let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        let sentinel = bytes.ends_with(SENTINEL.as_bytes());
        let mut inner = self.inner.lock().unwrap();
        if !sentinel && inner.held + bytes.len() + LINE_OVERHEAD > self.max_bytes {
            inner.dropped += bytes.len() as u64;
            return;
        }
        let line = LogLine::now(stream, String::from_utf8_lossy(bytes));
        inner.held += cost(&line);
        inner.lines.push_back(line);
        drop(inner);
        self.changed.notify_waiters();
    }

    /// Waits (up to `wait`) until `streams` captured streams reached end of file, then takes
    /// every line: the output of a process that ended.
    pub(crate) async fn take_closed(&self, streams: usize, wait: Duration) -> Vec<LogLine> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.lock().unwrap().closed >= streams {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let mut inner = self.inner.lock().unwrap();
        inner.held = 0;
        inner.lines.drain(..).collect()
    }

    /// Takes the lines of the current activation: on each stream, the lines before its first
    /// sentinel, once both sentinels arrived when `until_sentinels` (a stream that reached end
    /// of file, e.g. an action closed its stdout, counts as having its sentinel). Lines after
    /// a stream's sentinel belong to the next activation and stay buffered, even when they
    /// arrived before the other stream's sentinel. When `wait` runs out, a stream without a
    /// sentinel gives all its lines; without `until_sentinels` (or once the process ended)
    /// every line is taken.
    pub(crate) async fn take(&self, until_sentinels: bool, wait: Duration) -> Vec<LogLine> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.inner.lock().unwrap();
                let ends = first_sentinels(&inner.lines);
                if !until_sentinels {
                    let end = inner.lines.len();
                    return drain(&mut inner, end);
                }
                if (ends.0.is_some() || inner.closed_out) && (ends.1.is_some() || inner.closed_err)
                {
                    return take_activation(&mut inner, ends);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let mut inner = self.inner.lock().unwrap();
                let ends = first_sentinels(&inner.lines);
                return take_activation(&mut inner, ends);
            }
        }
    }
}

impl LogBuffer {
    /// Takes the lines of activation `id` in a container running several at once: the lines
    /// the runtime tagged `\x1e<id>\x1f`, without the tag, up to its tagged sentinels on both
    /// streams (or whatever is there when `wait` runs out). Other lines stay buffered.
    pub(crate) async fn take_tagged(&self, id: &str, wait: Duration) -> Vec<LogLine> {
        let tag = format!("\u{1e}{id}\u{1f}");
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let timed_out = {
                let inner = self.inner.lock().unwrap();
                let ended = |stream: Stream, closed: bool| {
                    closed
                        || inner.lines.iter().any(|l| {
                            l.stream == stream
                                && l.message.strip_prefix(tag.as_str()) == Some(SENTINEL)
                        })
                };
                ended(Stream::Stdout, inner.closed_out) && ended(Stream::Stderr, inner.closed_err)
            };
            if timed_out || tokio::time::timeout_at(deadline, notified).await.is_err() {
                let mut inner = self.inner.lock().unwrap();
                let (mine, rest): (VecDeque<LogLine>, VecDeque<LogLine>) =
                    std::mem::take(&mut inner.lines)
                        .into_iter()
                        .partition(|l| l.message.starts_with(tag.as_str()));
                inner.lines = rest;
                inner.held = inner
                    .held
                    .saturating_sub(mine.iter().map(cost).sum::<usize>());
                return mine
                    .into_iter()
                    .map(|mut l| {
                        l.message.drain(..tag.len());
                        l
                    })
                    .filter(|l| l.message != SENTINEL)
                    .collect();
            }
        }
    }
}

/// Takes the first `end` lines, without sentinels.
fn drain(inner: &mut Inner, end: usize) -> Vec<LogLine> {
    let lines: Vec<LogLine> = inner.lines.drain(..end).collect();
    inner.held = inner
        .held
        .saturating_sub(lines.iter().map(cost).sum::<usize>());
    lines
        .into_iter()
        .filter(|l| l.message != SENTINEL)
        .collect()
}

/// The positions of the first sentinel on stdout and on stderr, if any.
fn first_sentinels(lines: &VecDeque<LogLine>) -> (Option<usize>, Option<usize>) {
    let (mut out, mut err) = (None, None);
    for (i, l) in lines.iter().enumerate() {
        if l.message == SENTINEL {
            let first = match l.stream {
                Stream::Stdout => &mut out,
                Stream::Stderr => &mut err,
            };
            first.get_or_insert(i);
            if out.is_some() && err.is_some() {
                break;
            }
        }
    }
    (out, err)
}

/// Takes each stream's lines up to its sentinel at `ends` (stdout, stderr), or all of that
/// stream's lines when it has none, without the sentinels; the rest stays buffered in order.
fn take_activation(inner: &mut Inner, ends: (Option<usize>, Option<usize>)) -> Vec<LogLine> {
    let mut taken = Vec::new();
    let mut rest = VecDeque::new();
    for (i, line) in std::mem::take(&mut inner.lines).into_iter().enumerate() {
        let end = match line.stream {
            Stream::Stdout => ends.0,
            Stream::Stderr => ends.1,
        };
        if end.is_none_or(|e| i <= e) {
            inner.held = inner.held.saturating_sub(cost(&line));
            if line.message != SENTINEL {
                taken.push(line);
            }
        } else {
            rest.push_back(line);
        }
    }
    inner.lines = rest;
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tagged_lines_go_to_their_activation() {
        let buf = LogBuffer::default();
        let t = |id: &str, m: &str| format!("\u{1e}{id}\u{1f}{m}\n");
        let out = format!(
            "{}{}{}{}untagged\n",
            t("a", "a1"),
            t("b", "b1"),
            t("b", SENTINEL),
            t("a", SENTINEL)
        );
        let err = format!("{}{}{}", t("a", "a2"), t("b", SENTINEL), t("a", SENTINEL));
        buf.capture(out.as_bytes(), Stream::Stdout).await;
        buf.capture(err.as_bytes(), Stream::Stderr).await;
        let b: Vec<String> = buf
            .take_tagged("b", Duration::from_secs(1))
            .await
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(b, ["b1"]);
        let a: Vec<String> = buf
            .take_tagged("a", Duration::from_secs(1))
            .await
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(a, ["a1", "a2"]);
        let rest: Vec<String> = buf
            .take(false, Duration::ZERO)
            .await
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(rest, ["untagged"]);
    }

    #[tokio::test]
    async fn lines_may_span_fed_chunks() {
        let buf = LogBuffer::default();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        buf.feed(Stream::Stdout, &mut out, b"ab");
        buf.feed(Stream::Stderr, &mut err, b"e1\ne");
        buf.feed(Stream::Stdout, &mut out, b"c\r\nd\n\nlast");
        buf.close(Stream::Stdout, out);
        buf.close(Stream::Stderr, err);
        let got: Vec<(Stream, String)> = buf
            .take(true, Duration::ZERO)
            .await
            .into_iter()
            .map(|l| (l.stream, l.message))
            .collect();
        let want = [
            (Stream::Stderr, "e1"),
            (Stream::Stdout, "abc"),
            (Stream::Stdout, "d"),
            (Stream::Stdout, ""),
            (Stream::Stdout, "last"),
            (Stream::Stderr, "e"),
        ];
        assert_eq!(got, want.map(|(s, m)| (s, m.to_string())));
    }

    /// The texts of `lines`.
    fn messages(lines: Vec<LogLine>) -> Vec<String> {
        lines.into_iter().map(|l| l.message).collect()
    }

    #[tokio::test]
    async fn splits_at_sentinel_pairs() {
        let buf = LogBuffer::default();
        let out = format!("a\n{SENTINEL}\nc\n{SENTINEL}\n");
        let err = format!("b\n{SENTINEL}\n{SENTINEL}\n");
        buf.capture(out.as_bytes(), Stream::Stdout).await;
        buf.capture(err.as_bytes(), Stream::Stderr).await;
        let wait = Duration::from_secs(1);
        assert_eq!(messages(buf.take(true, wait).await), ["a", "b"]);
        assert_eq!(messages(buf.take(true, wait).await), ["c"]);
        let rest = buf.take(true, Duration::from_secs(1)).await;
        assert!(rest.is_empty());
    }

    /// One stream may run an activation ahead of the other (the runtime answered, the next
    /// run began, and its stdout was read before the previous stderr sentinel): each
    /// activation still gets its own lines, and no sentinel is lost to the one before.
    #[tokio::test]
    async fn a_stream_running_ahead_keeps_the_next_activation_apart() {
        let buf = LogBuffer::default();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let run = |n: u32| format!("out{n}\n{SENTINEL}\n");
        buf.feed(
            Stream::Stdout,
            &mut out,
            format!("{}{}", run(1), run(2)).as_bytes(),
        );
        buf.feed(
            Stream::Stderr,
            &mut err,
            format!("err1\n{SENTINEL}\n").as_bytes(),
        );
        let wait = Duration::from_millis(50);
        assert_eq!(messages(buf.take(true, wait).await), ["out1", "err1"]);
        buf.feed(
            Stream::Stderr,
            &mut err,
            format!("err2\n{SENTINEL}\n").as_bytes(),
        );
        assert_eq!(messages(buf.take(true, wait).await), ["out2", "err2"]);
        assert!(buf.inner.lock().unwrap().lines.is_empty());
    }

    #[tokio::test]
    async fn returns_what_is_there_when_the_wait_runs_out() {
        let buf = LogBuffer::default();
        buf.inner
            .lock()
            .unwrap()
            .lines
            .push_back(LogLine::now(Stream::Stdout, "partial"));
        let got = buf.take(true, Duration::from_millis(50)).await;
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn holds_at_most_max_bytes_and_still_sees_the_sentinels() {
        let buf = LogBuffer::with_max_bytes(10_000);
        let mut out = "x".repeat(99) + "\n";
        out = out.repeat(10_000) + SENTINEL + "\n";
        buf.capture(out.as_bytes(), Stream::Stdout).await;
        let (mut err, writer) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut w = writer;
            w.write_all(format!("{SENTINEL}\n").as_bytes())
                .await
                .unwrap();
            std::future::pending::<()>().await; // stderr stays open
        });
        let capture = async { buf.capture(&mut err, Stream::Stderr).await };
        let take = async {
            let started = std::time::Instant::now();
            let got = buf.take(true, Duration::from_secs(60)).await;
            // Ended by the sentinels, not by the (long) wait running out.
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the sentinels were seen"
            );
            got
        };
        let got = tokio::select! { got = take => got, _ = capture => unreachable!() };
        let bytes: usize = got.iter().map(|l| l.message.len() + LINE_OVERHEAD).sum();
        assert!(bytes <= 10_000, "{bytes}");
        assert!(!got.is_empty() && got.iter().all(|l| l.message.len() == 99));
        assert!(buf.dropped_bytes() >= 99 * 9_000, "{}", buf.dropped_bytes());
        // Once taken, there is room again.
        buf.capture(&b"again\n"[..], Stream::Stdout).await;
        let next = buf.take(false, Duration::ZERO).await;
        assert_eq!(next.last().unwrap().message, "again");
    }

    #[tokio::test]
    async fn a_closed_stdout_does_not_hold_up_the_activation() {
        let buf = LogBuffer::default();
        buf.capture(&b"before close\n"[..], Stream::Stdout).await; // end of file
        let (mut err, writer) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut w = writer;
            w.write_all(format!("oops\n{SENTINEL}\n").as_bytes())
                .await
                .unwrap();
            std::future::pending::<()>().await;
        });
        let capture = async { buf.capture(&mut err, Stream::Stderr).await };
        let take = async {
            let started = std::time::Instant::now();
            let got = buf.take(true, Duration::from_secs(60)).await;
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "ended by the stderr sentinel"
            );
            got
        };
        let got = tokio::select! { got = take => got, _ = capture => unreachable!() };
        let msgs: Vec<&str> = got.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, ["before close", "oops"]);
    }

    #[tokio::test]
    async fn long_lines_are_split_and_tagged_sentinels_are_never_dropped() {
        let buf = LogBuffer::with_max_bytes(3 * MAX_LINE);
        let tagged = format!("\u{1e}id\u{1f}{SENTINEL}");
        let out = format!(
            "{}\n{}\n{tagged}\n",
            "y".repeat(MAX_LINE * 2 + 10),
            "z".repeat(MAX_LINE)
        );
        buf.capture(out.as_bytes(), Stream::Stdout).await;
        let got = buf.take(false, Duration::ZERO).await;
        let sizes: Vec<usize> = got.iter().map(|l| l.message.len()).collect();
        // The 1 MB "z" line no longer fits; the tagged sentinel is kept anyway.
        assert_eq!(sizes, [MAX_LINE, MAX_LINE, 10, tagged.len()]);
        assert_eq!(got[3].message, tagged);
        assert_eq!(buf.dropped_bytes(), MAX_LINE as u64);
    }
}
