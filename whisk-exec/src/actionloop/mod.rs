//! The `blackbox` kind on the process executor: native executables speaking OpenWhisk's
//! *actionloop* protocol, driven by the executor itself over pipes. There is no proxy process
//! and no HTTP hop: the container answers `/init` and `/run` in process
//! ([`Container::in_process`]).
//!
//! - `/init` writes the executable: the `code` text (a script with a `#!` line), or the
//!   base64-decoded `code` when `binary` is true, either the executable itself or a zip
//!   archive whose root holds the executable `exec` (see [`archive`]). It then starts ONE
//!   long-lived process of it in a fresh `action-*` directory of the container, confined as
//!   every process container is ([`crate::isolation`]), with the container's environment
//!   plus the init `env` (`__OW_*` and the action's init parameters).
//! - Each `/run` body is written to the process's stdin as one JSON line; the process answers
//!   with one JSON line (an object or an array) on file descriptor 3.
//! - With `OW_WAIT_FOR_ACK` in its environment, the process first writes `{"ok":true}` on
//!   fd 3; `/init` waits for it up to `WHISK_ACTIONLOOP_ACK_TIMEOUT` seconds (container
//!   environment; default 60). Without it, a process that exits within 100 ms fails the
//!   init (the sandbox itself takes 20 to 60 ms to start on a busy machine).
//! - The process's stdout and stderr are the container's log streams. The executor reads
//!   them itself while it waits for an answer and right after it, then ends the activation
//!   in both streams: everything the process wrote before answering is in the activation's
//!   logs (a process must flush its output before answering, or its lines land in a later
//!   activation; output written while no activation runs waits in the pipes for the next).
//! - A process that exits or closes fd 3 ends the container: every later `/run` answers
//!   `502 {"error":"command exited"}`, as OpenWhisk's actionloop proxy does, and a line
//!   `actionloop: the action's process ...` says why in the logs.

pub(crate) mod archive;

use crate::isolation::{self, Sandbox};
use crate::logbuf::LogBuffer;
use crate::process::{container_logs, Confinement};
use async_trait::async_trait;
use bytes::Bytes;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::io::PipeWriter;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin};
use whisk_core::executor::{Container, ContainerSpec, ExecutorError, InProcessRuntime};
use whisk_core::logs::{LogLine, Stream, SENTINEL};
use whisk_core::runtime::{env_string, Reply};

/// The kind this module runs.
pub(crate) const KIND: &str = "blackbox";
/// The process's result channel, as in OpenWhisk's actionloop.
const RESULT_FD: i32 = 3;
/// How long a fresh process is watched for an immediate exit (no acknowledgement asked).
const START_GRACE: Duration = Duration::from_millis(100);
/// How often the process is checked while an answer is awaited (a process it started may
/// hold fd 3 open after it exited).
const LIVENESS_POLL: Duration = Duration::from_millis(250);
/// The default of `WHISK_ACTIONLOOP_ACK_TIMEOUT`.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

const COMMAND_EXITED: &str = "command exited";
const NOT_A_DICT: &str = "The action did not return a dictionary or array.";

/// A `blackbox` container of the process executor (see the module documentation).
pub(crate) struct ActionLoopContainer {
    id: String,
    endpoint: String,
    kind: String,
    memory_mb: u64,
    env: Vec<(String, String)>,
    /// What its sandbox hides and unshares.
    sandbox: Sandbox,
    confinement: Arc<Confinement>,
    logs: Arc<LogBuffer>,
    oom_kills_seen: AtomicU64,
    /// The running process, for signals and destroy (`None` before `/init` and after
    /// destroy). Its id is the process group's id.
    group: Mutex<Group>,
    /// The protocol side: one `/init` or `/run` at a time.
    driver: tokio::sync::Mutex<Driver>,
}

#[derive(Default)]
struct Group {
    child: Option<Child>,
    pgid: u32,
    destroyed: bool,
}

/// Where the protocol stands, and the container's log pipes.
struct Driver {
    stage: Stage,
    out: LogPipe,
    err: LogPipe,
}

enum Stage {
    /// Not initialised yet (or the last `/init` failed).
    Fresh,
    /// The process is up.
    Running {
        stdin: ChildStdin,
        results: BufReader<pipe::Receiver>,
    },
    /// The process exited or closed fd 3: no more answers.
    Exited,
}

/// One log stream of the process: a pipe whose write end each process of the container gets,
/// read by the executor into the container's log buffer.
struct LogPipe {
    stream: Stream,
    rx: pipe::Receiver,
    /// The unfinished line between reads.
    partial: Vec<u8>,
    /// The write end, duplicated for each process started; `None` after destroy.
    child_end: Option<PipeWriter>,
    /// End of file seen (no write end left).
    closed: bool,
}

impl LogPipe {
    fn new(stream: Stream) -> std::io::Result<Self> {
        let (reader, writer) = std::io::pipe()?;
        Ok(Self {
            stream,
            rx: pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?,
            partial: Vec::new(),
            child_end: Some(writer),
            closed: false,
        })
    }

    /// Moves what the pipe holds now into `logs`, without waiting.
    fn drain(&mut self, logs: &LogBuffer) {
        let mut buf = [0u8; 4096];
        while !self.closed {
            match self.rx.try_read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => logs.feed(self.stream, &mut self.partial, &buf[..n]),
                Err(_) => break,
            }
        }
    }

    /// Adds a line of the executor's own after what the pipe holds now.
    fn append(&mut self, logs: &LogBuffer, line: &str) {
        self.drain(logs);
        logs.feed(
            self.stream,
            &mut self.partial,
            format!("{line}\n").as_bytes(),
        );
    }
}

impl ActionLoopContainer {
    /// A container with nothing running yet (the process starts at `/init`).
    pub(crate) fn create(
        spec: &ContainerSpec,
        confinement: Arc<Confinement>,
        sandbox: Sandbox,
    ) -> std::io::Result<Self> {
        let logs = Arc::new(LogBuffer::default());
        let (out, err) = (LogPipe::new(Stream::Stdout)?, LogPipe::new(Stream::Stderr)?);
        let id = format!("{}-{}", spec.name, uuid::Uuid::new_v4().simple());
        Ok(Self {
            endpoint: format!("actionloop://{id}"),
            id,
            kind: spec.kind.clone(),
            memory_mb: spec.memory_mb,
            env: spec.env.clone(),
            sandbox,
            confinement,
            logs,
            oom_kills_seen: AtomicU64::new(0),
            group: Mutex::default(),
            driver: tokio::sync::Mutex::new(Driver {
                stage: Stage::Fresh,
                out,
                err,
            }),
        })
    }

    /// A value of the container's environment.
    fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// How long `/init` waits for the acknowledgement.
    fn ack_timeout(&self) -> Duration {
        self.env_var("WHISK_ACTIONLOOP_ACK_TIMEOUT")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(ACK_TIMEOUT, Duration::from_secs_f64)
    }

    /// Whether the process has exited (or was never started), without reaping it: its id
    /// stays reserved for the group signals until [`ActionLoopContainer::finish`].
    fn exited(&self) -> bool {
        let group = self.group.lock().unwrap();
        group
            .child
            .as_ref()
            .and_then(Child::id)
            .is_none_or(isolation::process_exited)
    }

    /// Ends the process for good and says how it ended: waits up to `grace` for it to exit
    /// on its own (its fd 3 closes a moment before the exit is visible), then kills its group
    /// and cgroups (what it started dies with it) and reaps it.
    async fn finish(&self, grace: Duration) -> String {
        let deadline = tokio::time::Instant::now() + grace;
        while !self.exited() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let exited = self.exited();
        let mut group = self.group.lock().unwrap();
        if group.child.is_some() {
            self.confinement.kill(group.pgid);
        }
        let status = group
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        group.pgid = 0; // reaped, or dying: no more group signals
        match (exited, status) {
            (true, Some(status)) => describe_exit(status),
            (true, None) => "exited".into(),
            (false, _) => "closed its result channel (fd 3)".into(),
        }
    }

    /// The next line on fd 3 (without its newline), reading the log pipes and watching the
    /// process while waiting; `None` at end of file, or when the process is gone and nothing
    /// is left to read.
    async fn answer(
        &self,
        results: &mut BufReader<pipe::Receiver>,
        out: &mut LogPipe,
        err: &mut LogPipe,
    ) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        let poll = tokio::time::sleep(LIVENESS_POLL);
        tokio::pin!(poll);
        loop {
            tokio::select! {
                biased;
                read = results.read_until(b'\n', &mut line) => return whole_line(read, line),
                _ = out.rx.readable(), if !out.closed => out.drain(&self.logs),
                _ = err.rx.readable(), if !err.closed => err.drain(&self.logs),
                _ = &mut poll => {
                    if self.exited() {
                        // Gone: whatever it wrote before exiting is still readable.
                        let last = tokio::time::timeout(
                            Duration::from_millis(10),
                            results.read_until(b'\n', &mut line),
                        )
                        .await;
                        return last.ok().and_then(|read| whole_line(read, line));
                    }
                    poll.as_mut().reset(tokio::time::Instant::now() + LIVENESS_POLL);
                }
            }
        }
    }

    /// Starts the executable at `exe` with `init_env`, its result pipe at fd 3.
    fn spawn(
        &self,
        driver: &mut Driver,
        exe: &Path,
        init_env: &[(String, String)],
    ) -> Result<(ChildStdin, BufReader<pipe::Receiver>), String> {
        let cannot = |e: &dyn std::fmt::Display| format!("Cannot start the action executable: {e}");
        launchable(exe).map_err(|e| cannot(&e))?;
        let (results, writer) = std::io::pipe().map_err(|e| cannot(&e))?;
        let writer = OwnedFd::from(writer);
        let (Some(out), Some(err)) = (&driver.out.child_end, &driver.err.child_end) else {
            return Err(cannot(&"the container was destroyed"));
        };
        let out = out.try_clone().map_err(|e| cannot(&e))?;
        let err = err.try_clone().map_err(|e| cannot(&e))?;
        let program = exe.to_string_lossy();
        let mut cmd = isolation::command(
            &program,
            &[],
            &self.kind,
            self.memory_mb,
            &self.confinement.workdir,
            &self.env,
            &self.sandbox,
        );
        cmd.env_remove("WHISK_RUNTIME_PORT")
            .envs(init_env.iter().map(|(k, v)| (k, v)))
            .current_dir(exe.parent().unwrap_or(&self.confinement.workdir))
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        isolation::pass_fd(&mut cmd, writer.as_raw_fd(), RESULT_FD);
        let mut child = cmd.spawn().map_err(|e| cannot(&e))?;
        drop(writer); // so the process's exit shows as the end of its fd 3
        let pgid = child.id().unwrap_or(0);
        self.confinement.cgroups.attach(pgid);
        let stdin = child.stdin.take().expect("piped stdin");
        let results =
            pipe::Receiver::from_owned_fd(OwnedFd::from(results)).map_err(|e| cannot(&e))?;
        let mut group = self.group.lock().unwrap();
        if group.destroyed {
            self.confinement.kill(pgid);
            return Err(cannot(&"the container was destroyed"));
        }
        group.child = Some(child);
        group.pgid = pgid;
        Ok((stdin, BufReader::new(results)))
    }

    /// `/init`: writes and starts the executable (see the module documentation).
    async fn start(&self, driver: &mut Driver, value: &Value) -> Result<(), String> {
        let code = value["code"].as_str().unwrap_or_default();
        let binary = value["binary"].as_bool() == Some(true);
        let root = self
            .confinement
            .workdir
            .join(format!("action-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&root)
            .map_err(|e| format!("Cannot write the action executable: {e}"))?;
        let started = self.start_in(driver, &root, code, binary, value).await;
        if started.is_err() {
            self.finish(Duration::ZERO).await;
            let _ = std::fs::remove_dir_all(&root);
        }
        started
    }

    async fn start_in(
        &self,
        driver: &mut Driver,
        root: &Path,
        code: &str,
        binary: bool,
        value: &Value,
    ) -> Result<(), String> {
        let exe = archive::materialise(code, binary, root)?;
        let init_env: Vec<(String, String)> = value["env"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), env_string(v)))
            .filter(|(k, v)| !k.is_empty() && !k.contains(['=', '\0']) && !v.contains('\0'))
            .collect();
        let wait_for_ack = init_env
            .iter()
            .any(|(k, v)| k == "OW_WAIT_FOR_ACK" && !v.is_empty())
            || self
                .env_var("OW_WAIT_FOR_ACK")
                .is_some_and(|v| !v.is_empty());
        let (stdin, mut results) = self.spawn(driver, &exe, &init_env)?;
        let pgid = self.group.lock().unwrap().pgid;
        self.confinement.attach_group(pgid).await;
        if wait_for_ack {
            let limit = self.ack_timeout();
            let (out, err) = (&mut driver.out, &mut driver.err);
            let ack = tokio::time::timeout(limit, self.answer(&mut results, out, err))
                .await
                .map_err(|_| {
                    format!(
                        "The action did not acknowledge its start on fd 3 within {} seconds.",
                        limit.as_secs_f64()
                    )
                })?;
            let Some(ack) = ack else {
                let how = self.finish(Duration::from_secs(1)).await;
                return Err(format!("The action {how} before acknowledging its start."));
            };
            let ok = serde_json::from_slice::<Value>(&ack)
                .is_ok_and(|v| v.get("ok") == Some(&Value::Bool(true)));
            if !ok {
                let text: String = String::from_utf8_lossy(&ack).chars().take(200).collect();
                return Err(format!(
                    "The action acknowledged its start with '{text}', not {{\"ok\":true}}."
                ));
            }
        } else {
            tokio::time::sleep(START_GRACE).await;
            if self.exited() {
                let how = self.finish(Duration::from_secs(1)).await;
                return Err(format!("The action {how} during initialization."));
            }
        }
        driver.stage = Stage::Running { stdin, results };
        Ok(())
    }

    /// One `/run` on a running process: the body as a line on stdin, the answer from fd 3.
    async fn exchange(&self, driver: &mut Driver, body: &Value) -> Reply {
        let Driver { stage, out, err } = driver;
        let Stage::Running { stdin, results } = stage else {
            return error_reply(502, COMMAND_EXITED);
        };
        // serde_json escapes every newline inside strings: the body is one line.
        let mut line = serde_json::to_vec(body).expect("json serialises");
        line.push(b'\n');
        let sent = stdin.write_all(&line).await.is_ok() && stdin.flush().await.is_ok();
        let answer = match sent {
            true => self.answer(results, out, err).await,
            false => None,
        };
        match answer {
            Some(answer) if is_object_or_array(&answer) => Reply::Answered {
                status: 200,
                body: Bytes::from(answer),
            },
            Some(_) => error_reply(502, NOT_A_DICT),
            None => {
                let how = self.finish(Duration::from_millis(200)).await;
                let note = format!("actionloop: the action's process {how}.");
                driver.err.append(&self.logs, &note);
                driver.stage = Stage::Exited;
                error_reply(502, COMMAND_EXITED)
            }
        }
    }
}

/// Whether `path` can be executed: an ELF file, or a script whose `#!` interpreter exists
/// and is executable. (The sandbox wrapper would otherwise report a failed exec only as its
/// own exit status.)
fn launchable(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| e.to_string())?;
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        return Ok(());
    }
    let Some(line) = head.strip_prefix(b"#!") else {
        return Err("Exec format error (neither an ELF executable nor a #! script)".into());
    };
    let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let interpreter = line.split_whitespace().next().unwrap_or_default();
    let executable = std::fs::metadata(interpreter).is_ok_and(|m| {
        m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
    });
    match executable {
        true => Ok(()),
        false => Err(format!("No such interpreter: '{interpreter}'")),
    }
}

/// The line `read_until` gathered, without its newline; `None` when the read failed or
/// reached end of file before a newline.
fn whole_line(read: std::io::Result<usize>, mut line: Vec<u8>) -> Option<Vec<u8>> {
    match read {
        Ok(_) if line.last() == Some(&b'\n') => {
            line.pop();
            Some(line)
        }
        _ => None,
    }
}

/// Whether a result line is a JSON object or array.
fn is_object_or_array(line: &[u8]) -> bool {
    let first = line.iter().find(|b| !b.is_ascii_whitespace());
    matches!(first, Some(b'{') | Some(b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// A runtime's error answer `{"error": message}`.
fn error_reply(status: u16, message: &str) -> Reply {
    Reply::Answered {
        status,
        body: Bytes::from(json!({ "error": message }).to_string()),
    }
}

/// How a process ended, in words.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("was killed by signal {}", s.as_str()),
            Err(_) => format!("was killed by signal {sig}"),
        },
        (None, None) => "exited".into(),
    }
}

impl Driver {
    /// Ends the activation in both log streams, after what the pipes hold now.
    fn end_activation(&mut self, logs: &LogBuffer) {
        self.out.append(logs, SENTINEL);
        self.err.append(logs, SENTINEL);
    }
}

#[async_trait]
impl InProcessRuntime for ActionLoopContainer {
    async fn init(&self, body: &Value, timeout: Duration) -> Reply {
        let mut driver = self.driver.lock().await;
        if !matches!(driver.stage, Stage::Fresh) {
            return error_reply(403, "Cannot initialize the action more than once.");
        }
        let value = &body["value"];
        if value["code"].as_str().is_none_or(str::is_empty) {
            return error_reply(403, "Missing main/no code to execute.");
        }
        match tokio::time::timeout(timeout, self.start(&mut driver, value)).await {
            Ok(Ok(())) => Reply::Answered {
                status: 200,
                body: Bytes::from_static(br#"{"ok":true}"#),
            },
            Ok(Err(message)) => {
                driver.end_activation(&self.logs);
                error_reply(502, &message)
            }
            Err(_) => Reply::TimedOut,
        }
    }

    async fn run(&self, body: &Value, timeout: Duration) -> Reply {
        let mut driver = self.driver.lock().await;
        if matches!(driver.stage, Stage::Fresh) {
            return error_reply(403, "System not ready.");
        }
        match tokio::time::timeout(timeout, self.exchange(&mut driver, body)).await {
            Ok(reply) => {
                driver.end_activation(&self.logs);
                reply
            }
            Err(_) => Reply::TimedOut,
        }
    }
}

#[async_trait]
impl Container for ActionLoopContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SIGSTOP to the process's group (nothing to stop before `/init`).
    async fn pause(&self) -> Result<(), ExecutorError> {
        self.signal(Signal::SIGSTOP)
    }

    /// SIGCONT to the process's group.
    async fn resume(&self) -> Result<(), ExecutorError> {
        self.signal(Signal::SIGCONT)
    }

    async fn destroy(&self) -> Result<(), ExecutorError> {
        let child = {
            let mut group = self.group.lock().unwrap();
            if group.destroyed {
                return Ok(());
            }
            group.destroyed = true;
            if group.child.is_some() {
                self.confinement.kill(group.pgid);
            }
            group.child.take()
        };
        if let Some(mut child) = child {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        {
            // A run in flight ends as its process dies; then the log pipes close.
            let mut driver = self.driver.lock().await;
            driver.stage = Stage::Exited;
            driver.out.child_end = None;
            driver.err.child_end = None;
        }
        self.confinement.clone().remove().await;
        Ok(())
    }

    fn in_process(&self) -> Option<&dyn InProcessRuntime> {
        Some(self)
    }

    async fn logs(
        &self,
        until_sentinels: bool,
        wait: Duration,
    ) -> Result<Vec<LogLine>, ExecutorError> {
        Ok(container_logs(
            &self.logs,
            &self.confinement,
            &self.oom_kills_seen,
            until_sentinels,
            wait,
        )
        .await)
    }
}

impl ActionLoopContainer {
    /// Sends `signal` to the process's group; the group id stays reserved while the process
    /// is unreaped, and [`ActionLoopContainer::finish`] forgets it (under the same lock)
    /// before it may be reaped.
    fn signal(&self, signal: Signal) -> Result<(), ExecutorError> {
        let group = self.group.lock().unwrap();
        if group.destroyed {
            return Err(ExecutorError::Gone(self.id.clone()));
        }
        if group.child.is_none() || group.pgid == 0 {
            return Ok(());
        }
        isolation::signal_group(group.pgid, signal).or_else(|e| match e {
            nix::errno::Errno::ESRCH => Ok(()),
            e => Err(ExecutorError::Other(format!("{signal}: {e}"))),
        })
    }
}

impl Drop for ActionLoopContainer {
    /// A container dropped without destroy: kill it and clean up in the background.
    fn drop(&mut self) {
        let group = self.group.get_mut().map(std::mem::take).unwrap_or_default();
        if !group.destroyed {
            if group.child.is_some() {
                self.confinement.kill(group.pgid);
            }
            drop(group.child); // kill_on_drop; tokio reaps it
            let confinement = self.confinement.clone();
            std::thread::spawn(move || confinement.remove_blocking());
        }
    }
}
