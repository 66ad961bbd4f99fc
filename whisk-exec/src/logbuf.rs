//! The captured output of one runtime process, split into activations at the sentinels.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;
use whisk_core::logs::{LogLine, Stream, SENTINEL};

#[derive(Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    /// Streams that reached end of file.
    closed: usize,
}

/// Lines read from a process's stdout and stderr, in arrival order.
#[derive(Default)]
pub(crate) struct LogBuffer {
    inner: Mutex<Inner>,
    changed: Notify,
}

impl LogBuffer {
    /// Reads `reader` line by line into the buffer until end of file.
    pub(crate) async fn capture(&self, reader: impl AsyncRead + Unpin, stream: Stream) {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    let line = LogLine::now(stream, String::from_utf8_lossy(&buf));
                    self.inner.lock().unwrap().lines.push_back(line);
                    self.changed.notify_waiters();
                }
            }
        }
        self.inner.lock().unwrap().closed += 1;
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
        self.inner.lock().unwrap().lines.drain(..).collect()
    }

    /// Takes the lines of the current activation: up to the sentinels of both streams when
    /// `until_sentinels`, otherwise (or when `wait` runs out, or the process ended) all lines.
    pub(crate) async fn take(&self, until_sentinels: bool, wait: Duration) -> Vec<LogLine> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.inner.lock().unwrap();
                let cut = if until_sentinels {
                    sentinel_cut(&inner.lines)
                } else {
                    None
                };
                let all = !until_sentinels || inner.closed == 2;
                if let Some(end) = cut.or(all.then_some(inner.lines.len())) {
                    return inner
                        .lines
                        .drain(..end)
                        .filter(|l| l.message != SENTINEL)
                        .collect();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let mut inner = self.inner.lock().unwrap();
                return inner
                    .lines
                    .drain(..)
                    .filter(|l| l.message != SENTINEL)
                    .collect();
            }
        }
    }
}

/// The index just past the first sentinel pair (one on each stream), if both arrived.
fn sentinel_cut(lines: &VecDeque<LogLine>) -> Option<usize> {
    let (mut out, mut err) = (false, false);
    for (i, l) in lines.iter().enumerate() {
        if l.message == SENTINEL {
            match l.stream {
                Stream::Stdout => out = true,
                Stream::Stderr => err = true,
            }
            if out && err {
                return Some(i + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_at_sentinel_pairs() {
        let buf = LogBuffer::default();
        let out = format!("a\n{SENTINEL}\nc\n{SENTINEL}\n");
        let err = format!("b\n{SENTINEL}\n{SENTINEL}\n");
        buf.capture(out.as_bytes(), Stream::Stdout).await;
        buf.capture(err.as_bytes(), Stream::Stderr).await;
        let first: Vec<String> = buf
            .take(true, Duration::from_secs(1))
            .await
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(first, ["a", "c", "b"]);
        let rest = buf.take(true, Duration::from_secs(1)).await;
        assert!(rest.is_empty());
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
}
