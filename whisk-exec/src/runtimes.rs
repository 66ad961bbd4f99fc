//! The bundled runtime launchers and how each kind is started on the process executor.
//!
//! A launcher is a program that listens on `127.0.0.1:$WHISK_RUNTIME_PORT` (0 = any free
//! port), prints `whisk-runtime-port: <port>` as its first stdout line, speaks the OpenWhisk
//! runtime protocol (`/init`, `/run`), prints the end-of-activation sentinel on stdout and
//! stderr after each run, and exits when its stdin closes.

use std::collections::HashMap;
use std::path::Path;

/// The bundled Node.js launcher (`nodejs:20`).
const NODEJS_LAUNCHER: &str = include_str!("../runtimes/nodejs/launcher.js");
/// The bundled Python launcher (`python:3.11`).
const PYTHON_LAUNCHER: &str = include_str!("../runtimes/python/launcher.py");

/// How to start the runtime process of one kind: `program args...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// The program, e.g. `node`.
    pub program: String,
    /// Its arguments, e.g. the launcher script.
    pub args: Vec<String>,
}

impl Launcher {
    /// `program args...`.
    pub fn new(program: &str, args: &[&str]) -> Self {
        Self {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
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
    launchers.insert("nodejs:20".to_string(), Launcher::new("node", &[&node]));
    let python = write(dir, "launcher.py", PYTHON_LAUNCHER)?;
    launchers.insert(
        "python:3.11".to_string(),
        Launcher::new("python3", &["-u", &python]),
    );
    Ok(launchers)
}
