//! The `process` executor: each container is a runtime launcher process speaking the runtime
//! protocol on a unix socket in its directory (or, for kinds that cannot, a loopback port),
//! confined as far as the machine allows (see [`crate::isolation`] for what is and is not
//! isolated).

use crate::actionloop::{self, ActionLoopContainer};
use crate::isolation::{self, Cgroups, Enforcement, Sandbox};
use crate::logbuf::LogBuffer;
use crate::runtimes::Launcher;
use crate::runtimes::PortMode;
use async_trait::async_trait;
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin};
use whisk_core::executor::{Container, ContainerExecutor, ContainerSpec, ExecutorError};
use whisk_core::logs::{LogLine, Stream};

/// How long a launcher may take to announce its port.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long destroy waits for a container's killed processes to leave its cgroups.
const CGROUP_PATIENCE: Duration = Duration::from_secs(2);
/// The log line added when the kernel killed a process of the container for its memory
/// (OpenWhisk's message for an action that ran out of memory).
const MEMORY_EXHAUSTED: &str = "The action exhausted its memory and was aborted.";

/// Runs containers as local processes, each in its own working directory, environment,
/// process group and — where the machine has them — cgroups with the action's memory limit
/// and a process limit. Not a sandbox for hostile code: see the crate's isolation notes
/// ([`Enforcement`] says what this machine enforces).
pub struct ProcessExecutor {
    dir: PathBuf,
    /// Paths containers must not see (the platform's data directory, ...).
    hidden: Vec<PathBuf>,
    /// Containers keep the host's network (no network namespace of their own).
    host_network: bool,
    /// Runtime sockets under `dir` fit a unix socket address (else runtimes use TCP).
    sockets: bool,
    launchers: HashMap<String, Launcher>,
}

impl ProcessExecutor {
    /// An executor with the bundled `nodejs:20` (`node`) and `python:3.11` (`python3`)
    /// launchers, written to a fresh directory under the system temp dir.
    pub fn new() -> std::io::Result<Self> {
        Self::in_dir(std::env::temp_dir())
    }

    /// An executor whose runtimes directory is a fresh directory in `parent`.
    fn in_dir(parent: PathBuf) -> std::io::Result<Self> {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let dir = parent.join(format!("whisk-runtimes-{}", &random[..16]));
        std::fs::create_dir_all(&dir)?;
        let launchers = crate::runtimes::bundled(&dir)?;
        let sockets = isolation::sockets_fit(&dir);
        if !sockets {
            tracing::warn!(
                dir = %dir.display(),
                "the runtimes directory's path is too long for unix sockets: runtimes listen \
                 on loopback ports and keep the host's network"
            );
        }
        Ok(Self {
            dir,
            hidden: Vec::new(),
            host_network: false,
            sockets,
            launchers,
        })
    }

    /// Adds the external runtime proxies of `manifest`'s kinds that name a `launcher`
    /// command (they replace bundled launchers of the same kind).
    pub fn with_manifest(mut self, manifest: &whisk_core::entity::RuntimeManifest) -> Self {
        for kind in manifest.kinds() {
            if let Some(l) = kind.launcher.as_deref().and_then(Launcher::external) {
                self.launchers.insert(kind.kind.clone(), l);
            }
        }
        self
    }

    /// Hides `path` (a directory, e.g. the platform's data directory) from every container
    /// where the file-system sandbox is available.
    pub fn with_hidden(mut self, path: impl Into<PathBuf>) -> Self {
        self.hidden.push(path.into());
        self
    }

    /// With `keep` true, containers keep the host's network instead of a network namespace
    /// of their own: actions can then call the platform's API (`__OW_API_HOST`) and any
    /// service the host reaches (and so also the platform's internals on loopback). The
    /// runtime protocol stays on unix sockets.
    pub fn with_host_network(mut self, keep: bool) -> Self {
        self.host_network = keep;
        self
    }

    /// Adds or replaces the launcher of `kind`.
    pub fn with_launcher(mut self, kind: &str, launcher: Launcher) -> Self {
        self.launchers.insert(kind.to_string(), launcher);
        self
    }

    /// The kinds this executor runs.
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.launchers.keys().cloned().collect();
        k.push(actionloop::KIND.to_string());
        k.sort();
        k.dedup();
        k
    }

    /// A fresh working directory and cgroups for the container of `spec`.
    fn confinement(&self, spec: &ContainerSpec) -> Result<Arc<Confinement>, ExecutorError> {
        let slot = isolation::slot_name(&spec.name);
        let workdir = isolation::create_workdir(&self.dir, &slot).map_err(|e| {
            ExecutorError::StartFailed(format!("cannot create the container's directory: {e}"))
        })?;
        Ok(Arc::new(Confinement {
            workdir,
            cgroups: Cgroups::create(&slot, spec.memory_mb),
        }))
    }

    /// What this executor enforces on this machine (rlimits, cgroups, sandbox, namespaces);
    /// the machine is probed once per process.
    pub fn enforcement(&self) -> Enforcement {
        let mut e = isolation::enforcement();
        e.network_namespace &= !self.host_network && self.sockets;
        e
    }

    /// The sandbox of a container; `own_network` if its runtime can do without the host's
    /// network (and the executor does not keep it).
    fn sandbox(&self, own_network: bool) -> Sandbox {
        Sandbox {
            hidden: self.hidden.clone(),
            own_network: own_network && !self.host_network,
        }
    }
}

impl Drop for ProcessExecutor {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl ContainerExecutor for ProcessExecutor {
    fn name(&self) -> &str {
        "process"
    }

    fn supports(&self, kind: &str) -> bool {
        self.launchers.contains_key(kind) || kind == actionloop::KIND
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Arc<dyn Container>, ExecutorError> {
        let Some(launcher) = self.launchers.get(&spec.kind) else {
            if spec.kind == actionloop::KIND {
                let confinement = self.confinement(spec)?;
                let sandbox = self.sandbox(!spec.host_network);
                return match ActionLoopContainer::create(spec, confinement.clone(), sandbox) {
                    Ok(c) => Ok(Arc::new(c)),
                    Err(e) => {
                        confinement.remove().await;
                        Err(ExecutorError::StartFailed(format!("log pipes: {e}")))
                    }
                };
            }
            return Err(ExecutorError::Unsupported(spec.kind.clone()));
        };
        crate::runtimes::prepare(&spec.kind, &self.dir).await?; // compiles the Java launcher once
        let confinement = self.confinement(spec)?;
        let assigned =
            match launcher.port {
                PortMode::Announced | PortMode::Socket => None,
                PortMode::Assigned => Some(free_port().map_err(|e| {
                    ExecutorError::StartFailed(format!("no free loopback port: {e}"))
                })?),
            };
        // A runtime on a unix socket needs no network: it gets a namespace of its own. The
        // executor binds the socket where no container sees it and hands the runtime the
        // listening descriptor, so no action can move or replace it.
        let socket = (launcher.port == PortMode::Socket && self.sockets)
            .then(|| isolation::socket_path(&confinement.workdir));
        let listener = match &socket {
            Some(path) => match std::os::unix::net::UnixListener::bind(path) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    confinement.clone().remove().await;
                    return Err(ExecutorError::StartFailed(format!(
                        "cannot bind the runtime's socket: {e}"
                    )));
                }
            },
            None => None,
        };
        let args: Vec<String> = match assigned {
            Some(port) => launcher
                .args
                .iter()
                .map(|a| a.replace("{port}", &port.to_string()))
                .collect(),
            None => launcher.args.clone(),
        };
        let mut env = spec.env.clone();
        if let Some(port) = assigned {
            env.push(("WHISK_RUNTIME_PORT".into(), port.to_string()));
        }
        if listener.is_some() {
            let fd = isolation::LISTEN_FD.to_string();
            env.push(("WHISK_RUNTIME_LISTEN_FD".into(), fd));
        }
        let mut command = isolation::command(
            &launcher.program,
            &args,
            &spec.kind,
            spec.memory_mb,
            &confinement.workdir,
            &env,
            &self.sandbox(socket.is_some() && !spec.host_network),
        );
        if let Some(listener) = &listener {
            use std::os::fd::AsRawFd;
            isolation::pass_fd(&mut command, listener.as_raw_fd(), isolation::LISTEN_FD);
        }
        let spawned = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        drop(listener); // the runtime holds it now
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                confinement.clone().remove().await;
                return Err(ExecutorError::StartFailed(format!(
                    "{}: {e}",
                    launcher.program
                )));
            }
        };
        // The launcher leads its own process group: its pid is the group's id. It stays
        // unreaped (so the id cannot be reused) until destroy has signalled the group.
        let pgid = child.id().unwrap_or(0);
        confinement.cgroups.attach(pgid);
        // Cleans up if this future is dropped before the container is handed out.
        let mut abandoned = Abandoned(Some((confinement.clone(), pgid)));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(LogBuffer::default());
        let err_logs = logs.clone();
        tokio::spawn(async move { err_logs.capture(stderr, Stream::Stderr).await });

        // Whisk's launchers announce their socket or port on their first stdout line;
        // everything after it is action output. An external proxy was given its port: wait
        // until it listens.
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        let (announced, endpoint) = match assigned {
            None => {
                let announced =
                    tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut first)).await;
                (
                    announced.map(|_| ()),
                    announced_endpoint(&first, socket.as_deref()),
                )
            }
            Some(port) => {
                let ready = tokio::time::timeout(START_TIMEOUT, listening(port, &mut child)).await;
                let up = matches!(ready, Ok(true));
                let endpoint = format!("http://127.0.0.1:{port}");
                (ready.map(|_| ()), up.then_some(endpoint))
            }
        };
        let Some(endpoint) = endpoint else {
            abandoned.0 = None;
            confinement.kill(pgid);
            let _ = child.kill().await;
            // Only stderr is captured so far; its end of file means all of it was read.
            let stderr: Vec<String> = logs
                .take_closed(1, Duration::from_secs(2))
                .await
                .into_iter()
                .map(|l| l.message)
                .collect();
            confinement.remove().await;
            return Err(ExecutorError::StartFailed(format!(
                "{} did not announce its port ({}): {}",
                spec.kind,
                if announced.is_err() {
                    "timed out"
                } else {
                    "exited"
                },
                stderr.join("\n")
            )));
        };
        abandoned.0 = None;
        // The launcher is up; everything it is made of joins the cgroups before any action
        // code runs (only `/init` loads the action).
        confinement.attach_group(pgid).await;
        let out_logs = logs.clone();
        tokio::spawn(async move { out_logs.capture(stdout, Stream::Stdout).await });
        Ok(Arc::new(ProcessContainer {
            id: format!("{}-{pgid}", spec.name),
            endpoint,
            pgid,
            process: Mutex::new(Some((child, stdin))),
            logs,
            confinement,
            oom_kills_seen: AtomicU64::new(0),
        }))
    }
}

/// The endpoint a launcher announced on its first stdout line `line`: `unix:<socket>` for
/// `whisk-runtime-socket: fd <n>` (a runtime given the listening `socket` on descriptor
/// `n`), `http://127.0.0.1:<port>` for `whisk-runtime-port: <port>`.
fn announced_endpoint(line: &str, socket: Option<&std::path::Path>) -> Option<String> {
    let line = line.trim();
    if let Some(fd) = line.strip_prefix("whisk-runtime-socket: fd ") {
        let listening = fd.trim().parse::<i32>().ok() == Some(isolation::LISTEN_FD);
        return socket
            .filter(|_| listening)
            .map(|path| format!("unix:{}", path.display()));
    }
    let port = line
        .strip_prefix("whisk-runtime-port:")?
        .trim()
        .parse::<u16>();
    port.ok().map(|port| format!("http://127.0.0.1:{port}"))
}

/// A free loopback port (bound and released: a runtime started right after binds it).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts connections on loopback `port`; false when `child` exits first.
async fn listening(port: u16, child: &mut tokio::process::Child) -> bool {
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A container whose start was abandoned half-way (the `create` future was dropped): its
/// processes are killed (the launcher is still unreaped then) and its confinement removed.
struct Abandoned(Option<(Arc<Confinement>, u32)>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some((confinement, pgid)) = self.0.take() {
            confinement.kill(pgid);
            std::thread::spawn(move || confinement.remove_blocking());
        }
    }
}

/// What a container holds on the host besides its process: its working directory and its
/// cgroups.
pub(crate) struct Confinement {
    /// The container's own directory.
    pub(crate) workdir: PathBuf,
    /// Its cgroups (none where the machine has none for us).
    pub(crate) cgroups: Cgroups,
}

impl Confinement {
    /// SIGKILL to process group `pgid` and to everything in the cgroups. `pgid` must still
    /// be unreaped.
    pub(crate) fn kill(&self, pgid: u32) {
        if pgid != 0 {
            let _ = isolation::signal_group(pgid, Signal::SIGKILL);
        }
        self.cgroups.signal_all(Signal::SIGKILL);
    }

    /// Removes the cgroups (killing stragglers), the working directory and the runtime's
    /// socket. Blocking.
    pub(crate) fn remove_blocking(&self) {
        self.cgroups.remove_blocking(CGROUP_PATIENCE);
        let _ = std::fs::remove_file(isolation::socket_path(&self.workdir)); // if it had one
        if let Err(e) = std::fs::remove_dir_all(&self.workdir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                let dir = self.workdir.display();
                tracing::warn!(dir = %dir, error = %e, "container directory not removed");
            }
        }
    }

    /// Moves every process of group `pgid` into the cgroups (see
    /// `Cgroups::attach_group`), off the async threads: it reads every process's status.
    pub(crate) async fn attach_group(self: &Arc<Self>, pgid: u32) {
        if pgid == 0 {
            return; // no group (the process was already reaped)
        }
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.cgroups.attach_group(pgid)).await;
    }

    /// [`Confinement::remove_blocking`] off the async threads.
    pub(crate) async fn remove(self: Arc<Self>) {
        let _ = tokio::task::spawn_blocking(move || self.remove_blocking()).await;
    }
}

/// The log lines of a process container since the last call (see [`Container::logs`]); for
/// a failed container, plus OpenWhisk's line when the kernel killed it for its memory
/// (`seen` counts the kills already reported).
pub(crate) async fn container_logs(
    logs: &LogBuffer,
    confinement: &Confinement,
    seen: &AtomicU64,
    until_sentinels: bool,
    wait: Duration,
) -> Vec<LogLine> {
    let mut lines = logs.take(until_sentinels, wait).await;
    if !until_sentinels {
        let kills = confinement.cgroups.oom_kills();
        if kills > seen.swap(kills, Ordering::Relaxed) {
            lines.push(LogLine::now(Stream::Stderr, MEMORY_EXHAUSTED));
        }
    }
    lines
}

/// One runtime process.
struct ProcessContainer {
    id: String,
    endpoint: String,
    /// The launcher's pid and process group id.
    pgid: u32,
    /// `None` once destroyed; the child is reaped only then.
    process: Mutex<Option<(Child, Option<ChildStdin>)>>,
    logs: Arc<LogBuffer>,
    confinement: Arc<Confinement>,
    /// OOM kills in the memory cgroup already reported in the logs.
    oom_kills_seen: AtomicU64,
}

impl ProcessContainer {
    /// Sends `signal` to the container's process group. (Not to processes that left the
    /// group: stopped outside it, they would not get the SIGHUP + SIGCONT the kernel sends
    /// to an orphaned, stopped process group, and would outlive a platform that was killed.)
    fn signal(&self, signal: Signal) -> Result<(), ExecutorError> {
        // Holding the lock keeps destroy from reaping the launcher (and freeing its id).
        let process = self.process.lock().unwrap();
        if process.is_none() || self.pgid == 0 {
            return Err(ExecutorError::Gone(self.id.clone()));
        }
        match isolation::signal_group(self.pgid, signal) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ESRCH) => Err(ExecutorError::Gone(self.id.clone())),
            Err(e) => Err(ExecutorError::Other(format!("{signal}: {e}"))),
        }
    }
}

#[async_trait]
impl Container for ProcessContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SIGSTOP to the container's process group.
    async fn pause(&self) -> Result<(), ExecutorError> {
        self.signal(Signal::SIGSTOP)
    }

    /// Destroyed, or its launcher exited (seen in `/proc`, without reaping it).
    fn exited(&self) -> bool {
        match self.process.lock().unwrap().as_ref() {
            None => true,
            Some((child, _)) => child.id().is_none_or(isolation::process_exited),
        }
    }

    /// SIGCONT to the container's process group.
    async fn resume(&self) -> Result<(), ExecutorError> {
        self.signal(Signal::SIGCONT)
    }

    async fn destroy(&self) -> Result<(), ExecutorError> {
        let taken = self.process.lock().unwrap().take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            self.confinement.kill(self.pgid);
            let _ = child.start_kill();
            let _ = child.wait().await;
            self.confinement.clone().remove().await;
        }
        Ok(())
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

    async fn activation_logs(
        &self,
        activation_id: &str,
        wait: Duration,
    ) -> Result<Vec<LogLine>, ExecutorError> {
        Ok(self.logs.take_tagged(activation_id, wait).await)
    }
}

impl Drop for ProcessContainer {
    /// A container dropped without destroy: kill it and clean up in the background.
    fn drop(&mut self) {
        let taken = self.process.get_mut().map(Option::take).unwrap_or(None);
        if let Some((child, _stdin)) = taken {
            self.confinement.kill(self.pgid);
            drop(child); // kill_on_drop; tokio reaps it
            let confinement = self.confinement.clone();
            std::thread::spawn(move || confinement.remove_blocking());
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use whisk_core::testkit::executor::Fixture;

    mod nodejs {
        use super::*;
        whisk_core::executor_conformance_tests!(ProcessExecutor::new().unwrap(), Fixture::nodejs());
    }

    mod python {
        use super::*;
        whisk_core::executor_conformance_tests!(ProcessExecutor::new().unwrap(), Fixture::python());
    }

    #[test]
    fn a_launcher_announces_the_socket_it_was_given_or_a_port() {
        let given = std::path::Path::new("/r/c/x.sock");
        let socket = Some(given);
        assert_eq!(
            announced_endpoint("whisk-runtime-socket: fd 3\n", socket).as_deref(),
            Some("unix:/r/c/x.sock")
        );
        assert_eq!(
            announced_endpoint("whisk-runtime-socket: fd 4\n", socket),
            None,
            "only on the descriptor it was given"
        );
        assert_eq!(announced_endpoint("whisk-runtime-socket: fd 3", None), None);
        assert_eq!(
            announced_endpoint("whisk-runtime-port: 4321\n", None).as_deref(),
            Some("http://127.0.0.1:4321")
        );
        for bad in [
            "whisk-runtime-port: 70000",
            "whisk-runtime-port:",
            "hello",
            "",
        ] {
            assert_eq!(announced_endpoint(bad, socket), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn runtimes_speak_on_unix_sockets_unless_the_path_is_too_long() {
        let exec = ProcessExecutor::new().unwrap();
        let spec = ContainerSpec {
            name: "s".into(),
            kind: "nodejs:20".into(),
            image: None,
            memory_mb: 128,
            env: vec![],
            host_network: false,
        };
        let c = exec.create(&spec).await.unwrap();
        assert!(c.endpoint().starts_with("unix:/"), "{}", c.endpoint());
        let socket = std::path::PathBuf::from(c.endpoint().strip_prefix("unix:").unwrap());
        assert!(socket.exists());
        c.destroy().await.unwrap();
        assert!(!socket.exists(), "{} removed", socket.display());
        let machine = isolation::enforcement().network_namespace;
        assert_eq!(exec.enforcement().network_namespace, machine);
        let kept = ProcessExecutor::new().unwrap().with_host_network(true);
        assert!(!kept.enforcement().network_namespace);

        // A runtimes directory too deep for a socket address: loopback ports, host network.
        let deep = std::env::temp_dir().join("d".repeat(80));
        let exec = ProcessExecutor::in_dir(deep.clone()).unwrap();
        assert!(!exec.enforcement().network_namespace);
        let c = exec.create(&spec).await.unwrap();
        assert!(
            c.endpoint().starts_with("http://127.0.0.1:"),
            "{}",
            c.endpoint()
        );
        let client = whisk_core::runtime::RuntimeClient::default();
        let body = whisk_core::runtime::init_body(
            "s",
            None,
            Some("function main() { return {ok: true}; }"),
            false,
            Default::default(),
        );
        let init = client
            .init(c.endpoint(), &body, Duration::from_secs(20))
            .await;
        assert!(init.response.is_success(), "{:?}", init.response);
        c.destroy().await.unwrap();
        drop(exec);
        let _ = std::fs::remove_dir_all(&deep);
    }

    #[tokio::test]
    async fn a_launcher_that_never_announces_fails_cleanly() {
        let exec = ProcessExecutor::new().unwrap().with_launcher(
            "broken:1",
            Launcher::new("sh", &["-c", "echo oops >&2; exit 3"]),
        );
        let spec = ContainerSpec {
            name: "b".into(),
            kind: "broken:1".into(),
            image: None,
            memory_mb: 128,
            env: vec![],
            host_network: false,
        };
        let err = exec.create(&spec).await.err().expect("start fails");
        assert!(err.to_string().contains("oops"), "{err}");
        let spec = ContainerSpec {
            kind: "missing:1".into(),
            ..spec
        };
        assert!(matches!(
            exec.create(&spec).await.err(),
            Some(ExecutorError::Unsupported(_))
        ));
    }
}
