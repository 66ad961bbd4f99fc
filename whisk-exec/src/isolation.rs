//! What the process executor does to keep one container from hurting the platform, and what
//! it does not do.
//!
//! # Enforced
//!
//! - **Working directory.** Every container gets a fresh directory
//!   `<runtimes dir>/containers/<name>-<random>` (mode 0700) as its current directory, `HOME`
//!   and `TMPDIR`; the launchers (and, for `blackbox` actions, the executor itself) write the
//!   action's code there. It is removed on destroy.
//! - **Environment.** The process starts with an empty environment plus `PATH` (the
//!   platform's), `HOME` and `TMPDIR` (the working directory), `LANG=C.UTF-8`,
//!   `WHISK_RUNTIME_PORT` (and `WHISK_RUNTIME_LISTEN_FD` for runtimes on a socket) and the
//!   entries of [`ContainerSpec::env`] (`__OW_API_HOST`). The
//!   runtime protocol then adds the `__OW_*` values and the action's init parameters inside
//!   the process. Nothing else of the platform's environment (credentials, configuration)
//!   reaches an action.
//! - **Process group.** The launcher (for `blackbox` actions: the action's executable,
//!   started at `/init`) leads a process group of its own; destroy sends SIGKILL
//!   to the whole group (so children and grandchildren the action started die with it), and
//!   `pause`/`resume` send SIGSTOP/SIGCONT to it.
//! - **cgroups (v1), where the platform may create them** (root, or a delegated hierarchy):
//!   each container gets `whisk/<platform pid>.<name>-<random>` below the platform's own
//!   cgroup in the `pids` and `memory` hierarchies. `pids.max` = [`PIDS_MAX`] stops fork
//!   bombs (threads count too); `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`,
//!   so no swap) = the action's memory limit, enforced by the kernel's OOM killer, which
//!   kills the runtime: the activation is then the developer error "The action did not
//!   produce a valid response and exited unexpectedly." and its logs say "The action
//!   exhausted its memory and was aborted.". The launcher is moved in right after it is
//!   spawned, while its interpreter is still starting (the action's code runs only after
//!   `/init`; children inherit the cgroups); destroy also kills every process still in the
//!   container's cgroup (which catches processes that left the process group with `setsid`)
//!   and then removes the cgroups. Nested under the platform's own cgroup, the containers
//!   stay inside any limit the platform itself runs under; empty cgroups left by a platform
//!   that died are swept at start. Where the cgroups cannot be created (no v1 `pids` or
//!   `memory` hierarchy, not writable, cgroup v2 only), the executor warns once and runs
//!   without them.
//! - **rlimits, through util-linux `prlimit`** (when it is on `PATH`; else a warning once):
//!   `RLIMIT_NOFILE` 1024 (as OpenWhisk's Docker containers), `RLIMIT_CORE` 0, and for
//!   `python:*` kinds `RLIMIT_AS` = `max(4 × memory limit, 1024 MB)` of address space, so an
//!   allocation past it fails with `MemoryError` even without cgroups. Node.js and the JVM
//!   get no address-space limit: V8 reserves about 10 GB of address space for every
//!   WebAssembly memory (Node 20's `fetch` makes one), so any useful `RLIMIT_AS` breaks
//!   `fetch`, and the JVM reserves its heap and class space up front; for them the memory
//!   cgroup is the limit. `RLIMIT_NPROC` is not used: it counts all processes of the user
//!   (and does not apply to root at all); the `pids` cgroup is the process limit.
//! - **Logs** are bounded per container: at most 16 MB of lines are held (more is dropped
//!   and counted; the end-of-activation sentinels never are), so an action printing
//!   gigabytes costs the platform CPU, not memory. An action that closes its stdout ends its
//!   activations at the stderr sentinel.
//!
//! - **Files, where `bwrap` (bubblewrap) is usable.** Each launcher (and each `blackbox`
//!   executable) runs in a bwrap sandbox without any capability (also when the platform runs
//!   as root: no action can undo the sandbox's mounts):
//!   the root file system read-only (also `/tmp`; `TMPDIR` is the container's directory), the
//!   executor's `containers` directory replaced by an empty one except the container's own
//!   (writable) directory, and the paths given to `ProcessExecutor::with_hidden` replaced by
//!   empty ones. Other containers' files and hidden platform data are invisible; nothing
//!   outside the container's directory is writable.
//! - **Processes, where bwrap can unshare the PID namespace.** Each container has a PID
//!   namespace of its own with a fresh `/proc`: an action sees and signals only its own
//!   processes (not the platform's, whose `/proc/<pid>/environ` and `cmdline` may hold keys,
//!   nor other containers'), and an IPC namespace of its own. Orphans are adopted by bwrap's init in the namespace, and when
//!   the container's first process ends, the kernel kills everything left in the namespace,
//!   also processes that left the process group and the cgroups. The executor keeps working
//!   with host pids: the process group, the cgroups and the exit check all see them.
//! - **Network, where bwrap can unshare the network namespace.** Containers of the bundled
//!   `nodejs:20` and `python:3.11` kinds and `blackbox` containers get a network namespace
//!   of their own, with nothing but their own loopback: no host service, not the platform's
//!   API, not another container's runtime. Their runtime protocol runs on a unix socket
//!   the executor binds at `<container directory>.sock` (`unix:<path>` endpoints), where no
//!   container sees it, and hands to the runtime as a listening descriptor: no action can
//!   replace it by a link the platform would follow. Actions therefore
//!   cannot call the platform's API (`__OW_API_HOST`) unless the executor keeps the host
//!   network ([`ProcessExecutor::with_host_network`](crate::ProcessExecutor::with_host_network)).
//!
//! # Not isolated
//!
//! - **Files without bwrap.** Actions run as the platform's own user. Mode 0700 keeps other
//!   *users* out of a container's directory, but every action can then read and write
//!   whatever the platform's user can. With bwrap, the rest of the file system is still
//!   readable. There is no disk quota.
//! - **Without bwrap**, or where it cannot unshare a namespace: an action sees every process
//!   in `/proc` and may signal any process of the same user, the platform included, and
//!   reaches the loopback interface (the platform's API, other containers' runtime ports) and
//!   everything the host reaches.
//! - **Network of `java:17` and external runtime proxies.** They listen on a loopback TCP
//!   port (the JDK's `HttpServer` has no unix sockets), so they keep the host's network:
//!   they reach every host service, and any process on the host (not other sandboxed
//!   containers) can connect to their port. The same holds for every container of an
//!   executor that keeps the host network.
//! - **User.** No user namespace: actions run as the platform's user (root included), inside
//!   the sandbox above.
//! - **CPU.** No CPU shares or quota; a busy action competes with the platform.
//! - **Without cgroups** there is no memory limit for Node.js or Java actions and no process
//!   limit at all (only the process-group kill on destroy).
//!
//! For untrusted code, use an executor that runs real containers; the process executor is
//! the standalone default, built to survive buggy actions, not hostile ones.
//!
//! [`ContainerSpec::env`]: whisk_core::executor::ContainerSpec::env

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// `pids.max` of every container: enough for a JVM's threads, few enough to stop a fork bomb.
pub const PIDS_MAX: u64 = 256;
/// `RLIMIT_NOFILE` of every container (soft and hard), as OpenWhisk's Docker containers.
pub const NOFILE: u64 = 1024;
/// The least `RLIMIT_AS` given to a kind that gets one (interpreter start-up needs room).
const MIN_ADDRESS_SPACE_MB: u64 = 1024;
/// `RLIMIT_AS` is this many times the action's memory limit (but at least the minimum).
const ADDRESS_SPACE_FACTOR: u64 = 4;

/// What this machine lets the executor enforce, probed once per process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// `prlimit` is available: `RLIMIT_NOFILE`, `RLIMIT_CORE` and (Python) `RLIMIT_AS`.
    pub rlimits: bool,
    /// Each container gets a cgroup v1 `pids` limit.
    pub pids_cgroup: bool,
    /// Each container gets a cgroup v1 `memory` limit.
    pub memory_cgroup: bool,
    /// Each container sees the file system through `bwrap`: read-only, with only its own
    /// directory writable and other containers' directories (and hidden paths) invisible.
    pub filesystem: bool,
    /// Each container has a PID namespace of its own (`bwrap --unshare-pid`, with a fresh
    /// `/proc`): it sees and signals only its own processes, and all of them end with it.
    /// It gets an IPC namespace of its own too (no System V IPC shared with the host).
    pub pid_namespace: bool,
    /// Containers of the bundled Node.js and Python kinds and `blackbox` containers have a
    /// network namespace of their own (`bwrap --unshare-net`: only a loopback interface of
    /// their own), their runtime protocol on a unix socket beside their directory. `java:17` and
    /// external runtime proxies listen on a host TCP port and keep the host's network.
    /// False when the executor's directory is too deep for socket addresses, or when it was
    /// told to keep the host network
    /// ([`ProcessExecutor::with_host_network`](crate::ProcessExecutor::with_host_network)).
    pub network_namespace: bool,
}

struct Probe {
    prlimit: Option<PathBuf>,
    /// `bwrap` (bubblewrap), when it is installed and can build a sandbox here.
    bwrap: Option<PathBuf>,
    /// `bwrap --unshare-pid` works here.
    pid_ns: bool,
    /// `bwrap --unshare-net` works here.
    net_ns: bool,
    /// The `whisk` parent cgroup in the `pids` hierarchy.
    pids: Option<PathBuf>,
    /// The `whisk` parent cgroup in the `memory` hierarchy.
    memory: Option<PathBuf>,
}

fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let prlimit = find_program("prlimit");
        if prlimit.is_none() {
            tracing::warn!(
                "prlimit (util-linux) not found: process containers run without rlimits"
            );
        }
        let sandboxed = |bwrap: &Path, extra: &[&str]| {
            std::process::Command::new(bwrap)
                .args(extra)
                .args(["--cap-drop", "ALL", "--ro-bind", "/", "/"])
                .args(["--dev", "/dev", "--proc", "/proc", "true"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let bwrap = find_program("bwrap").filter(|b| sandboxed(b, &[]));
        let pid_ns = bwrap
            .as_ref()
            .is_some_and(|b| sandboxed(b, &["--unshare-pid", "--unshare-ipc"]));
        let net_ns = bwrap
            .as_ref()
            .is_some_and(|b| sandboxed(b, &["--unshare-net"]));
        if bwrap.is_none() {
            tracing::warn!(
                "bwrap (bubblewrap) not usable: process containers share the file system, \
                 the processes and the network of the host"
            );
        } else if !pid_ns || !net_ns {
            tracing::warn!(
                pid_namespace = pid_ns,
                network_namespace = net_ns,
                "bwrap cannot create every namespace here: process containers share what it \
                 cannot"
            );
        }
        let pids = parent_cgroup("pids");
        let memory = parent_cgroup("memory");
        if pids.is_none() || memory.is_none() {
            tracing::warn!(
                pids = pids.is_some(),
                memory = memory.is_some(),
                "cgroup v1 pids/memory hierarchies not writable: process containers run \
                 without those limits"
            );
        }
        Probe {
            prlimit,
            bwrap,
            pid_ns,
            net_ns,
            pids,
            memory,
        }
    })
}

/// What is enforced on this machine for an executor that does not keep the host network
/// ([`ProcessExecutor::enforcement`](crate::ProcessExecutor::enforcement) says it for one
/// executor).
pub fn enforcement() -> Enforcement {
    let p = probe();
    Enforcement {
        rlimits: p.prlimit.is_some(),
        pids_cgroup: p.pids.is_some(),
        memory_cgroup: p.memory.is_some(),
        filesystem: p.bwrap.is_some(),
        pid_namespace: p.pid_ns,
        network_namespace: p.net_ns,
    }
}

/// `name` on the platform's `PATH`, if it is a file there.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `<the platform's own cgroup in the v1 hierarchy of controller>/whisk`, created if needed;
/// `None` when there is no such hierarchy or it is not writable.
fn parent_cgroup(controller: &str) -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dir = mounts.lines().find_map(|l| {
        let (mount, fs) = l.split_once(" - ")?;
        let mut fs = fs.split_whitespace();
        if fs.next()? != "cgroup" || !fs.nth(1)?.split(',').any(|o| o == controller) {
            return None;
        }
        let mut fields = mount.split_whitespace();
        let root = fields.nth(3)?;
        let point = fields.next()?;
        let rel = own.strip_prefix(root).unwrap_or(&own);
        Some(Path::new(point).join(rel.trim_start_matches('/')))
    })?;
    let parent = dir.join("whisk");
    match std::fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return None,
    }
    if !parent.join("cgroup.procs").is_file() {
        return None;
    }
    sweep(&parent);
    Some(parent)
}

/// Removes cgroups left behind by platforms that exited without destroying their containers:
/// empty ones whose creating process is gone (their names start with its pid) or that are
/// older than a minute (a younger one of a live platform may be about to get its process).
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let stale = std::time::SystemTime::now() - Duration::from_secs(60);
    for entry in entries.flatten() {
        let dir = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan = name
            .split_once('.')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < stale);
        let empty = std::fs::read_to_string(dir.join("cgroup.procs"))
            .is_ok_and(|procs| procs.trim().is_empty());
        if (orphan || old) && empty {
            let _ = std::fs::remove_dir(&dir); // fails harmlessly if it is in use
        }
    }
}

/// At most this many characters of a container's name go into its directory's name (short
/// enough for the runtime socket's path to fit a unix socket address).
const SLOT_NAME_CHARS: usize = 24;
/// The longest slot name: the cleaned name, `-` and a 10-character random suffix.
const SLOT_MAX: usize = SLOT_NAME_CHARS + 11;
/// The longest path a unix socket address holds (`sun_path` is 108 bytes, NUL included).
const SOCKET_PATH_MAX: usize = 107;
/// The file descriptor a runtime inherits its listening socket on.
pub(crate) const LISTEN_FD: i32 = 3;

/// The runtime socket of the container whose directory is `workdir`: `<workdir>.sock`,
/// beside the directory, so no container sees it (the containers' directory is hidden, the
/// own directory only is bound) and no action can replace it.
pub(crate) fn socket_path(workdir: &Path) -> PathBuf {
    workdir.with_extension("sock")
}

/// Whether the runtime socket of every container under the runtimes directory `base` has a
/// path short enough for a unix socket address.
pub(crate) fn sockets_fit(base: &Path) -> bool {
    let longest = socket_path(&base.join("containers").join("x".repeat(SLOT_MAX)));
    longest.as_os_str().len() <= SOCKET_PATH_MAX
}

/// Makes the process `cmd` starts inherit `fd` as descriptor `target` (not closed at exec).
pub(crate) fn pass_fd(cmd: &mut tokio::process::Command, fd: i32, target: i32) {
    // SAFETY: only dup2, which is async-signal-safe, runs between fork and exec. dup2 onto
    // another number clears close-on-exec; onto the same number it would not, so that case
    // clears the flag itself.
    unsafe {
        cmd.pre_exec(move || {
            if fd == target {
                let flags = nix::libc::fcntl(fd, nix::libc::F_GETFD);
                if flags == -1
                    || nix::libc::fcntl(fd, nix::libc::F_SETFD, flags & !nix::libc::FD_CLOEXEC)
                        == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
                return Ok(());
            }
            match nix::libc::dup2(fd, target) {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            }
        });
    }
}

/// A name usable as a directory name: `name` cleaned, plus a random suffix.
pub(crate) fn slot_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .take(SLOT_NAME_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{clean}-{}", &random[..10])
}

/// Creates the container's private working directory `base/containers/slot` (mode 0700).
pub(crate) fn create_workdir(base: &Path, slot: &str) -> std::io::Result<PathBuf> {
    let parent = base.join("containers");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&parent)?;
    let dir = parent.join(slot);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// What a container's `bwrap` sandbox hides and unshares besides the file system.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sandbox {
    /// Paths replaced by empty directories (the platform's data directory, ...).
    pub(crate) hidden: Vec<PathBuf>,
    /// Whether the container gets a network namespace of its own (only its own loopback).
    pub(crate) own_network: bool,
}

/// The command that starts `program args` confined: in a `bwrap` sandbox where available
/// (the root file system read-only, the containers' directory replaced by an empty one
/// except `workdir`, `sandbox.hidden` paths replaced by empty ones, a PID namespace of its
/// own with a fresh `/proc`, and a network namespace of its own if `sandbox.own_network`),
/// with rlimits through `prlimit`, an empty environment plus `env`, `workdir` as current
/// directory, `HOME` and `TMPDIR`, and a process group of its own.
pub(crate) fn command(
    program: &str,
    args: &[String],
    kind: &str,
    memory_mb: u64,
    workdir: &Path,
    env: &[(String, String)],
    sandbox: &Sandbox,
) -> tokio::process::Command {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    let p = probe();
    if let Some(bwrap) = &p.bwrap {
        argv.push(bwrap.into());
        // The namespace's first process (bwrap's init) is the parent of the action's
        // orphans; when it ends, the kernel kills everything left in the namespace.
        if p.pid_ns {
            argv.push("--unshare-pid".into());
            argv.push("--unshare-ipc".into());
        }
        if p.net_ns && sandbox.own_network {
            argv.push("--unshare-net".into());
        }
        // No capabilities, even for a platform running as root: else an action could
        // unmount what hides the platform's data (and the host's /proc below the fresh one).
        for a in [
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--unsetenv",
            "PWD",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
        ] {
            argv.push(a.into());
        }
        let containers = workdir.parent();
        let mut tmpfs = |p: &Path| {
            argv.push("--tmpfs".into());
            argv.push(p.into());
        };
        for h in sandbox.hidden.iter().filter(|h| h.is_dir()) {
            tmpfs(h);
        }
        if let Some(containers) = containers {
            tmpfs(containers);
        }
        argv.extend(["--bind".into(), workdir.into(), workdir.into(), "--".into()]);
    }
    if let Some(prlimit) = &p.prlimit {
        argv.push(prlimit.into());
        argv.push(format!("--nofile={NOFILE}:{NOFILE}").into());
        argv.push("--core=0".into());
        if let Some(bytes) = address_space_limit(kind, memory_mb) {
            argv.push(format!("--as={bytes}").into());
        }
        argv.push("--".into());
    }
    argv.push(program.into());
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", workdir)
        .env("TMPDIR", workdir)
        .env("LANG", "C.UTF-8")
        .env("WHISK_RUNTIME_PORT", "0")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workdir)
        .process_group(0);
    cmd
}

/// The `RLIMIT_AS` of a container of `kind`, in bytes: only Python kinds get one (see the
/// module documentation).
pub(crate) fn address_space_limit(kind: &str, memory_mb: u64) -> Option<u64> {
    kind.starts_with("python:")
        .then(|| (memory_mb * ADDRESS_SPACE_FACTOR).max(MIN_ADDRESS_SPACE_MB) * 1024 * 1024)
}

/// Warns once per process about a cgroup operation that failed.
fn warn_once(what: &str, error: &std::io::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(error = %error, "{what}: process containers may run without cgroup limits");
    }
}

/// The cgroups of one container (none where the machine has none for us).
#[derive(Debug, Default)]
pub(crate) struct Cgroups {
    pids: Option<PathBuf>,
    memory: Option<PathBuf>,
}

impl Cgroups {
    /// Creates the cgroups of container `slot` with its limits.
    pub(crate) fn create(slot: &str, memory_mb: u64) -> Self {
        let p = probe();
        let make = |parent: &Option<PathBuf>, limits: &[(&str, String)]| -> Option<PathBuf> {
            let dir = parent
                .as_ref()?
                .join(format!("{}.{slot}", std::process::id()));
            if let Err(e) = std::fs::create_dir(&dir) {
                warn_once("cannot create a container cgroup", &e);
                return None;
            }
            for (file, value) in limits {
                let path = dir.join(file);
                if !path.exists() {
                    continue; // e.g. memory.memsw.* without swap accounting
                }
                if let Err(e) = std::fs::write(&path, value) {
                    warn_once("cannot set a container cgroup limit", &e);
                    let _ = std::fs::remove_dir(&dir);
                    return None;
                }
            }
            Some(dir)
        };
        let bytes = (memory_mb * 1024 * 1024).to_string();
        Self {
            pids: make(&p.pids, &[("pids.max", PIDS_MAX.to_string())]),
            memory: make(
                &p.memory,
                &[
                    ("memory.limit_in_bytes", bytes.clone()),
                    ("memory.memsw.limit_in_bytes", bytes),
                ],
            ),
        }
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.pids.iter().chain(self.memory.iter())
    }

    /// Moves process `pid` (and so its future children) into the cgroups.
    pub(crate) fn attach(&self, pid: u32) {
        for dir in self.dirs() {
            if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                warn_once("cannot move a runtime into its cgroup", &e);
            }
        }
    }

    /// Moves every process of process group `pgid` into the cgroups: the sandbox wrapper may
    /// have started the launcher before the wrapper itself was moved in.
    pub(crate) fn attach_group(&self, pgid: u32) {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the parenthesised command: state, ppid, pgrp, ...
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            if rest.split(' ').nth(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
                && pid != pgid
            {
                self.attach(pid);
            }
        }
    }

    /// The processes in the container's cgroup.
    fn members(&self) -> Vec<i32> {
        let Some(dir) = self.pids.as_ref().or(self.memory.as_ref()) else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Sends `signal` to every process in the cgroup; returns how many there were.
    pub(crate) fn signal_all(&self, signal: Signal) -> usize {
        let members = self.members();
        for pid in &members {
            let _ = kill(Pid::from_raw(*pid), signal);
        }
        members.len()
    }

    /// How many times the kernel's OOM killer struck in the memory cgroup.
    pub(crate) fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        std::fs::read_to_string(dir.join("memory.oom_control"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Kills whatever still runs in the cgroups, then removes them (retrying while the
    /// killed processes exit). Blocking: call from a blocking context.
    pub(crate) fn remove_blocking(&self, patience: Duration) {
        let deadline = std::time::Instant::now() + patience;
        for dir in self.dirs() {
            loop {
                let late = std::time::Instant::now() > deadline;
                if self.signal_all(Signal::SIGKILL) == 0 || late {
                    match std::fs::remove_dir(dir) {
                        Ok(()) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                        Err(e) if late => {
                            let dir = dir.display();
                            tracing::warn!(cgroup = %dir, error = %e, "cgroup not removed");
                            break;
                        }
                        Err(_) => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Whether process `pid` has exited (a zombie not yet reaped counts), read from
/// `/proc/<pid>/stat` without reaping it, so its id stays reserved for group signals.
pub(crate) fn process_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|state| state == 'Z' || state == 'X'),
        Err(_) => true,
    }
}

/// Sends `signal` to process group `pgid`.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> nix::Result<()> {
    killpg(Pid::from_raw(pgid as i32), signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_fit_below_short_directories_only() {
        assert!(sockets_fit(Path::new(
            "/tmp/whisk-runtimes-0123456789abcdef"
        )));
        assert!(!sockets_fit(&Path::new("/tmp").join("d".repeat(80))));
        // The longest slot name is what is checked.
        let slot = slot_name(&"n".repeat(200));
        assert_eq!(slot.len(), SLOT_MAX);
        let base = Path::new("/tmp/whisk-runtimes-0123456789abcdef");
        let socket = socket_path(&base.join("containers").join(slot));
        assert!(socket.as_os_str().len() <= SOCKET_PATH_MAX);
        assert!(socket.to_string_lossy().ends_with(".sock"));
    }
}
