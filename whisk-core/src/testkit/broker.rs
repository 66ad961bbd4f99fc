//! A Kafka-protocol broker of a test's own: the `tansu` binary (`.ci/run` installs it and
//! exports its path as `WHISK_TEST_TANSU`), in memory, on a free loopback port. Tests that
//! stop and restart the broker use it instead of the shared one.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback TCP port (bound once, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running tansu broker with memory storage; killed on drop.
pub struct OwnBroker {
    bin: String,
    port: u16,
    child: Option<Child>,
}

impl OwnBroker {
    /// Starts `bin` (a tansu binary) on a free loopback port and waits for its listener.
    pub fn start(bin: &str) -> OwnBroker {
        let mut broker = OwnBroker {
            bin: bin.to_string(),
            port: free_port(),
            child: None,
        };
        broker.restart();
        broker
    }

    /// `host:port` to give Kafka clients.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker again (empty: memory storage) on the same port. A restart soon after
    /// [`kill`](Self::kill) can find the port still held by closing connections (tansu does
    /// not set `SO_REUSEADDR` and exits when it cannot bind), so it retries for up to 90 s.
    pub fn restart(&mut self) {
        self.kill();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut child = Command::new(&self.bin)
                .args(["broker", "--listener-url", &url])
                .args(["--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/", "--silent"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tansu");
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
                    "tansu did not open port {}",
                    self.port
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                Instant::now() < deadline,
                "tansu could not bind port {}",
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

    /// Stops the broker at once (SIGKILL), losing everything it held.
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
