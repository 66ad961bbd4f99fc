//! Keep-alive HTTP/1.1 connections to runtime processes, each driven by the task that uses
//! it.
//!
//! A request takes an idle connection to its runtime (or opens one), and the request, the
//! connection's reads and writes and the answer all progress in the caller's task; the
//! connection goes back to the idle list once its answer is read. A general-purpose client
//! drives each connection from a task of its own, so every call to a runtime also switched
//! tasks twice, often between threads. The HTTP itself is hyper's.
//!
//! A runtime is addressed by `host:port` (TCP) or `unix:<path>` (a unix socket, as the
//! process executor's sandboxed runtimes listen on).

use bytes::Bytes;
use futures::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// A connection's byte stream: TCP or a unix socket.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Driver = Pin<Box<Connection<TokioIo<Box<dyn Stream>>, Full<Bytes>>>>;

/// The prefix of a unix socket runtime address.
const UNIX: &str = "unix:";

/// One connection: the handle that sends requests and the future that does its I/O.
struct Conn {
    send: SendRequest<Full<Bytes>>,
    driver: Driver,
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No connection could be made (the runtime does not listen, yet or any more).
    Connect,
    /// The connection failed or closed before the whole answer arrived.
    Lost,
}

/// Idle connections by runtime address (`host:port` or `unix:<path>`).
#[derive(Default)]
pub(crate) struct Connections {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle: usize = self.idle.lock().unwrap().values().map(Vec::len).sum();
        f.debug_struct("Connections").field("idle", &idle).finish()
    }
}

impl Connections {
    /// POSTs the JSON `body` to `path` on the runtime at `authority` (`host:port`, or
    /// `unix:<path>` for a unix socket) and reads the whole answer: its status and body.
    pub(crate) async fn post(
        &self,
        authority: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), Failure> {
        let mut conn = match self.reuse(authority) {
            Some(conn) => conn,
            None => connect(authority).await?,
        };
        let host = if authority.starts_with(UNIX) {
            "localhost"
        } else {
            authority
        };
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|_| Failure::Lost)?;
        // The connection may end right after a whole answer (a runtime that closes each
        // connection): the answer still counts; only the exchange decides.
        let mut ended = false;
        let answer = {
            let Conn { send, driver } = &mut conn;
            let exchange = async {
                send.ready().await.map_err(|_| Failure::Lost)?;
                let response = send
                    .send_request(request)
                    .await
                    .map_err(|_| Failure::Lost)?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await;
                Ok((status, body.map_err(|_| Failure::Lost)?.to_bytes()))
            };
            tokio::pin!(exchange);
            loop {
                tokio::select! {
                    answer = &mut exchange => break answer,
                    _ = driver.as_mut(), if !ended => ended = true,
                }
            }
        };
        if answer.is_ok() && !ended {
            // The runtime's list outlives its emptying (only `sweep` removes lists), so putting
            // a connection back allocates nothing on the invoke path.
            let mut idle = self.idle.lock().unwrap();
            match idle.get_mut(authority) {
                Some(list) => list.push(conn),
                None => {
                    idle.insert(authority.to_string(), vec![conn]);
                }
            }
        }
        answer
    }

    /// An idle connection to `authority` the runtime has not closed meanwhile.
    fn reuse(&self, authority: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap();
        let list = idle.get_mut(authority)?;
        while let Some(mut conn) = list.pop() {
            // Polled once: a connection the runtime closed (or that broke) ends here.
            if conn.driver.as_mut().now_or_never().is_none() {
                return Some(conn);
            }
        }
        None
    }

    /// Drops the idle connections whose runtime closed them (e.g. a removed container's).
    pub(crate) fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap();
        idle.retain(|_, list| {
            list.retain_mut(|conn| conn.driver.as_mut().now_or_never().is_none());
            !list.is_empty()
        });
    }
}

/// Opens a connection to `authority` (`host:port` or `unix:<path>`).
async fn connect(authority: &str) -> Result<Conn, Failure> {
    let stream: Box<dyn Stream> = match authority.strip_prefix(UNIX) {
        Some(path) => Box::new(
            UnixStream::connect(path)
                .await
                .map_err(|_| Failure::Connect)?,
        ),
        None => {
            let stream = TcpStream::connect(authority)
                .await
                .map_err(|_| Failure::Connect)?;
            let _ = stream.set_nodelay(true);
            Box::new(stream)
        }
    };
    let (send, driver) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connect)?;
    Ok(Conn {
        send,
        driver: Box::pin(driver),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// How the test runtime treats a connection after answering.
    #[derive(Clone, Copy)]
    enum After {
        /// Keeps it open for the next request.
        KeepAlive,
        /// Says `Connection: close` and closes it.
        Close,
        /// Closes it without saying so (as a runtime that restarted would).
        Drop,
    }

    /// A runtime answering every POST with `{"n":<request number>}`; returns its address, the
    /// number of connections it accepted, and a channel that ticks after each answer (and
    /// close).
    async fn runtime(after: After) -> (String, Arc<AtomicUsize>, tokio::sync::mpsc::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (runtime, accepted, ticks) = Runtime::new(after);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                runtime.serve(stream);
            }
        });
        (addr, accepted, ticks)
    }

    /// The state of a test runtime: how it ends connections, what it counts.
    #[derive(Clone)]
    struct Runtime {
        after: After,
        accepted: Arc<AtomicUsize>,
        served: Arc<AtomicUsize>,
        done: tokio::sync::mpsc::Sender<()>,
    }

    impl Runtime {
        fn new(after: After) -> (Self, Arc<AtomicUsize>, tokio::sync::mpsc::Receiver<()>) {
            let accepted = Arc::new(AtomicUsize::new(0));
            let (done, ticks) = tokio::sync::mpsc::channel(16);
            let runtime = Self {
                after,
                accepted: accepted.clone(),
                served: Arc::new(AtomicUsize::new(0)),
                done,
            };
            (runtime, accepted, ticks)
        }

        /// Answers the requests of one accepted connection in a task of its own.
        fn serve<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(&self, stream: S) {
            self.accepted.fetch_add(1, Ordering::SeqCst);
            let Runtime {
                after,
                served,
                done,
                ..
            } = self.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                    let answer = format!("{{\"n\":{n}}}");
                    let close = matches!(after, After::Close);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{}\r\n",
                        answer.len(),
                        if close { "connection: close\r\n" } else { "" }
                    );
                    let s = stream.get_mut();
                    s.write_all(format!("{head}{answer}").as_bytes())
                        .await
                        .unwrap();
                    if !matches!(after, After::KeepAlive) {
                        s.shutdown().await.unwrap();
                        drop(stream);
                        done.send(()).await.unwrap();
                        return;
                    }
                    done.send(()).await.unwrap();
                }
            });
        }
    }

    async fn post(c: &Connections, addr: &str) -> Result<(u16, Bytes), Failure> {
        c.post(addr, "/run", Bytes::from_static(b"{}")).await
    }

    #[tokio::test]
    async fn a_kept_alive_connection_serves_the_next_call() {
        let (addr, accepted, mut ticks) = runtime(After::KeepAlive).await;
        let c = Connections::default();
        for n in 1..=3 {
            let (status, body) = post(&c, &addr).await.unwrap();
            assert_eq!((status, body), (200, Bytes::from(format!("{{\"n\":{n}}}"))));
            ticks.recv().await.unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_runtime_on_a_unix_socket_serves_kept_alive_connections() {
        let dir = std::env::temp_dir().join(format!("whisk-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rt.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (runtime, accepted, mut ticks) = Runtime::new(After::KeepAlive);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                runtime.serve(stream);
            }
        });
        let addr = format!("unix:{}", path.display());
        let c = Connections::default();
        for n in 1..=3 {
            let (status, body) = post(&c, &addr).await.unwrap();
            assert_eq!((status, body), (200, Bytes::from(format!("{{\"n\":{n}}}"))));
            ticks.recv().await.unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // A socket whose file is gone takes no new connections.
        std::fs::remove_dir_all(&dir).unwrap();
        let fresh = Connections::default();
        assert!(matches!(post(&fresh, &addr).await, Err(Failure::Connect)));
    }

    #[tokio::test]
    async fn a_runtime_closing_its_connections_still_answers_every_call() {
        for after in [After::Close, After::Drop] {
            let (addr, accepted, mut ticks) = runtime(after).await;
            let c = Connections::default();
            for n in 1..=3 {
                let (status, body) = post(&c, &addr).await.unwrap();
                assert_eq!((status, body), (200, Bytes::from(format!("{{\"n\":{n}}}"))));
                ticks.recv().await.unwrap(); // answered and closed
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
            c.sweep();
            assert!(
                c.idle.lock().unwrap().is_empty(),
                "closed connections are dropped"
            );
        }
    }

    #[tokio::test]
    async fn no_runtime_is_a_connect_failure_and_a_runtime_gone_mid_call_is_lost() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            // Reads the request, then goes away without answering.
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = stream.read(&mut buf).await;
        });
        let c = Connections::default();
        assert!(matches!(post(&c, &addr).await, Err(Failure::Lost)));
        assert!(matches!(post(&c, &addr).await, Err(Failure::Connect)));
    }
}
