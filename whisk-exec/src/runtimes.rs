//! The bundled runtime launchers and how each kind is started on the process executor.
//!
//! A launcher is a program that serves the listening unix socket it inherits on descriptor
//! `$WHISK_RUNTIME_LISTEN_FD` when that is set (and prints `whisk-runtime-socket: fd <n>` as
//! its first stdout line), else listens on
//! `127.0.0.1:$WHISK_RUNTIME_PORT` (0 = any free port; it prints `whisk-runtime-port: <port>`),
//! speaks the OpenWhisk runtime protocol (`/init`, `/run`) over HTTP/1.1 there, prints the
//! end-of-activation sentinel on stdout and stderr after each run, and exits when its stdin
//! closes. The Node.js and Python launchers run on sockets; the Java launcher (the JDK's
//! `HttpServer` has no unix sockets) on a port.
//!
//! The Java launcher (`java:17`) is Java source: it is compiled with `javac` at its first use
//! in a process (about a second), and the class files are written into each executor's
//! directory when that executor first starts a `java:17` container (see [`prepare`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use whisk_core::executor::ExecutorError;

/// The bundled Node.js launcher (`nodejs:20`).
const NODEJS_LAUNCHER: &str = include_str!("../runtimes/nodejs/launcher.js");
/// The bundled Python launcher (`python:3.11`).
const PYTHON_LAUNCHER: &str = include_str!("../runtimes/python/launcher.py");
/// The HTTP side shared by the Python launchers (imported from beside them).
pub const PYTHON_RUNTIME_HTTP: &str = include_str!("../runtimes/python/runtime_http.py");
/// The bundled Java launcher (`java:17`), compiled on first use.
const JAVA_LAUNCHER: &str = include_str!("../runtimes/java/Launcher.java");
/// The Java kind.
const JAVA_KIND: &str = "java:17";
/// Gson, used by the Java launcher and by actions (Debian package `libgoogle-gson-java`).
const GSON_JAR: &str = "/usr/share/java/gson.jar";

/// How to start the runtime process of one kind: `program args...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// The program, e.g. `node`.
    pub program: String,
    /// Its arguments, e.g. the launcher script.
    pub args: Vec<String>,
    /// How the runtime's port is found: announced on its first stdout line (whisk's
    /// launchers), or chosen by the executor and handed to an external runtime proxy.
    pub port: PortMode,
}

/// How the executor learns a runtime's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMode {
    /// The runtime binds `$WHISK_RUNTIME_PORT` (0 = any) and prints `whisk-runtime-port: <n>`.
    Announced,
    /// The runtime serves the listening unix socket it inherits on descriptor
    /// `$WHISK_RUNTIME_LISTEN_FD` (the executor binds it beside the container's directory,
    /// where no container sees it) and prints `whisk-runtime-socket: fd <n>`; it needs no network,
    /// so its container gets a network namespace of its own. Where the executor's directory
    /// is too deep for a socket address, it is started as `Announced` instead.
    Socket,
    /// The executor picks a free loopback port, passes it as `{port}` in the arguments and as
    /// `$WHISK_RUNTIME_PORT`, and waits until the runtime accepts connections on it (any
    /// proxy speaking the OpenWhisk runtime protocol, e.g. OpenWhisk's own).
    Assigned,
}

impl Launcher {
    /// `program args...`, announcing its port like whisk's launchers.
    pub fn new(program: &str, args: &[&str]) -> Self {
        Self {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            port: PortMode::Announced,
        }
    }

    /// An external runtime proxy `command[0] command[1..]` listening on an assigned port.
    pub fn external(command: &[String]) -> Option<Self> {
        let (program, args) = command.split_first()?;
        Some(Self {
            program: program.clone(),
            args: args.to_vec(),
            port: PortMode::Assigned,
        })
    }
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> std::io::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.to_string_lossy().into_owned())
}

/// The launchers of the bundled kinds, their scripts written into `dir`.
pub(crate) fn bundled(dir: &Path) -> std::io::Result<HashMap<String, Launcher>> {
    let mut launchers = HashMap::new();
    let node = write(dir, "launcher.js", NODEJS_LAUNCHER)?;
    let on_socket = |l: Launcher| Launcher {
        port: PortMode::Socket,
        ..l
    };
    launchers.insert(
        "nodejs:20".to_string(),
        on_socket(Launcher::new("node", &[&node])),
    );
    write(dir, "runtime_http.py", PYTHON_RUNTIME_HTTP)?;
    let python = write(dir, "launcher.py", PYTHON_LAUNCHER)?;
    launchers.insert(
        "python:3.11".to_string(),
        on_socket(Launcher::new("python3", &["-u", &python])),
    );
    let java = dir.join("java");
    std::fs::create_dir_all(&java)?;
    write(&java, "Launcher.java", JAVA_LAUNCHER)?;
    let classpath = format!("{}:{GSON_JAR}", java.join("classes").to_string_lossy());
    launchers.insert(
        JAVA_KIND.to_string(),
        Launcher::new(
            "java",
            &[
                "-cp",
                &classpath,
                "-XX:+UseSerialGC",
                // Temporary files (the action's jar) go to the container's own directory.
                "-Djava.io.tmpdir=.",
                "-XX:TieredStopAtLevel=1",
                "-Xshare:auto",
                "Launcher",
            ],
        ),
    );
    Ok(launchers)
}

/// Makes `kind` ready to start from the runtimes directory `dir`: for `java:17`, puts the
/// compiled launcher into `dir/java/classes` unless it is there already. Other kinds need
/// nothing.
pub(crate) async fn prepare(kind: &str, dir: &Path) -> Result<(), ExecutorError> {
    if kind != JAVA_KIND || dir.join("java").join("classes").is_dir() {
        return Ok(());
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || install_java(&dir))
        .await
        .map_err(|e| ExecutorError::StartFailed(format!("{JAVA_KIND}: {e}")))?
        .map_err(|e| ExecutorError::StartFailed(format!("{JAVA_KIND}: {e}")))
}

/// A compiled class file: its name and bytes.
type ClassFiles = Arc<Vec<(String, Vec<u8>)>>;

/// The Java launcher's class files, once compiled in this process. The lock is held while
/// compiling, so concurrent first uses compile once; a failure is retried at the next use.
static JAVA_CLASSES: Mutex<Option<ClassFiles>> = Mutex::new(None);

/// Writes the compiled Java launcher into `dir/java/classes` (atomically: staged, then
/// renamed, so a concurrent start of the same executor never sees half of it).
fn install_java(dir: &Path) -> Result<(), String> {
    let classes = {
        let mut cached = JAVA_CLASSES.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some(c) => c.clone(),
            None => {
                let source = dir.join("java").join("Launcher.java");
                cached.insert(Arc::new(compile_java(&source)?)).clone()
            }
        }
    };
    let target = dir.join("java").join("classes");
    let staging = dir
        .join("java")
        .join(format!("classes-{}", uuid::Uuid::new_v4().simple()));
    let staged = (|| {
        std::fs::create_dir_all(&staging)?;
        for (name, bytes) in classes.iter() {
            std::fs::write(staging.join(name), bytes)?;
        }
        std::fs::rename(&staging, &target)
    })();
    if staged.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    match staged {
        Err(_) if target.is_dir() => Ok(()), // another start installed it first
        other => other.map_err(|e| format!("cannot install the launcher: {e}")),
    }
}

/// Compiles the Java launcher `source` into a scratch directory and returns its class files.
fn compile_java(source: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let needs = "it needs a JDK (javac) and Gson at /usr/share/java/gson.jar (Debian packages \
                 default-jdk-headless and libgoogle-gson-java)";
    if !Path::new(GSON_JAR).is_file() {
        return Err(format!("{GSON_JAR} is missing; {needs}"));
    }
    let scratch: PathBuf =
        std::env::temp_dir().join(format!("whisk-javac-{}", uuid::Uuid::new_v4().simple()));
    let compiled = (|| {
        let out = scratch.join("classes");
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let javac = std::process::Command::new("javac")
            .args(["-nowarn", "-cp", GSON_JAR, "-d"])
            .arg(&out)
            .arg(source)
            .output()
            .map_err(|e| format!("cannot run javac ({e}); {needs}"))?;
        if !javac.status.success() {
            return Err(format!(
                "javac failed: {}",
                String::from_utf8_lossy(&javac.stderr).trim()
            ));
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&out).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.ends_with(".class") {
                let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
                files.push((name.into_owned(), bytes));
            }
        }
        Ok(files)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    compiled
}
