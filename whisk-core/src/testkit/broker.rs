//! A Kafka-protocol broker of a test's own on a free loopback port: the `tansu` binary
//! (`.ci/run` installs it and exports its path as `WHISK_TEST_TANSU`), in memory, or the
//! `noida-db` binary (`WHISK_TEST_NOIDA`) with its data in a directory, so it keeps its
//! topics, records and committed offsets across a `kill -9` and restart. Tests that stop and
//! restart the broker use it instead of the shared one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback TCP port (bound once, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running broker (tansu in memory, or noida-db on disk); killed on drop.
pub struct OwnBroker {
    bin: String,
    /// noida-db's data directory; `None` for tansu (memory storage).
    data_dir: Option<PathBuf>,
    port: u16,
    child: Option<Child>,
}

impl OwnBroker {
    /// Starts `bin` (a tansu binary) on a free loopback port and waits for its listener.
    pub fn start(bin: &str) -> OwnBroker {
        Self::launch(bin, None)
    }

    /// Starts `bin` (a noida-db binary, its Kafka service only) on a free loopback port with
    /// its data in `data_dir`, and waits for its listener. noida-db writes its Kafka state
    /// (topics, records, committed offsets) to `data_dir/kafka.json` as it changes, so a
    /// [`restart`](Self::restart) after a [`kill`](Self::kill) finds what was written by
    /// then; what changed in the moment before the kill may be missing.
    pub fn start_durable(bin: &str, data_dir: impl Into<PathBuf>) -> OwnBroker {
        Self::launch(bin, Some(data_dir.into()))
    }

    fn launch(bin: &str, data_dir: Option<PathBuf>) -> OwnBroker {
        let mut broker = OwnBroker {
            bin: bin.to_string(),
            data_dir,
            port: free_port(),
            child: None,
        };
        broker.restart();
        broker
    }

    /// The command that starts the broker on its port.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        match &self.data_dir {
            None => {
                let url = format!("tcp://127.0.0.1:{}", self.port);
                cmd.args(["broker", "--listener-url", &url])
                    .args(["--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/", "--silent"]);
            }
            Some(dir) => {
                cmd.args(["start", "--only", "kafka", "--host", "127.0.0.1"])
                    .args(["--kafka-port", &self.port.to_string()])
                    .arg("--data-dir")
                    .arg(dir);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// `host:port` to give Kafka clients.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker again on the same port: tansu empty (memory storage), noida-db with
    /// its data directory. A restart soon after [`kill`](Self::kill) can find the port still
    /// held by closing connections (tansu does not set `SO_REUSEADDR` and exits when it
    /// cannot bind), so it retries for up to 90 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut child = self.command().spawn().expect("start the broker");
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // could not bind yet
                }
                assert!(
                    Instant::now() < deadline,
                    "the broker did not open port {}",
                    self.port
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                Instant::now() < deadline,
                "the broker could not bind port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered, as with a
    /// broker that hangs or a network partition. Its state survives for [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`pause`](Self::pause)d broker run again (SIGCONT), with everything it held.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("the broker is running");
        let status = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} failed");
    }

    /// Stops the broker at once (SIGKILL), losing everything it held in memory.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT"); // a paused process would not die until continued
        }
        self.kill();
    }
}
