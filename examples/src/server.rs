//! The HTTP server of the example binaries: HTTP/1.1 connections (hyper), over TLS (rustls)
//! when a certificate is given, with limits on slow clients and a graceful stop.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use whisk_core::api::RequestLimits;

/// A certificate chain and its private key, loaded for serving HTTPS.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    cert: PathBuf,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads a PEM certificate chain (the server's certificate first) and its PEM private key
    /// (PKCS#8, PKCS#1 or SEC1). Fails with a message naming the file when one cannot be read,
    /// holds no certificate or key, or the key does not belong to the certificate.
    pub fn from_pem_files(cert: &Path, key: &Path) -> std::io::Result<Self> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid =
            |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| invalid(format!("TLS certificate {}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(invalid(format!(
                "TLS certificate {}: no PEM certificate in the file",
                cert.display()
            )));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => invalid(format!(
                "TLS key {}: no PEM private key in the file",
                key.display()
            )),
            e => invalid(format!("TLS key {}: {e}", key.display())),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
            .map_err(|e| {
                invalid(format!(
                    "TLS certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            cert: cert.to_path_buf(),
        })
    }
}

/// The default of [`ServeSettings::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;

/// How a REST API is served.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Serve HTTPS with this certificate; plain HTTP when `None` (the default).
    pub tls: Option<Tls>,
    /// The API's request limits (body, URI, headers, request timeout).
    pub limits: RequestLimits,
    /// Longest time a client may take to send a request's head (and to complete the TLS
    /// handshake), and longest a keep-alive connection may wait for its next request, before
    /// the connection is closed (default 30 s): a client sending its headers a byte at a time
    /// cannot hold a connection open.
    pub header_read_timeout: Duration,
    /// Most connections served at once (default 8192, OpenWhisk's controller's
    /// `max-connections`). Beyond it the server accepts no more until one closes: new clients
    /// wait in the listen backlog, so an open-loop flood cannot take every file descriptor
    /// (which the pool needs for containers) or a task and a buffer per connection.
    pub max_connections: usize,
}

impl ServeSettings {
    /// The URL scheme the API is served with: `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            tls: None,
            limits: RequestLimits::default(),
            header_read_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// An HTTP server with a graceful stop.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    scheme: &'static str,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `app` on `listener` over plain HTTP with the default [`ServeSettings`].
    pub fn start(listener: TcpListener, app: axum::Router) -> std::io::Result<Self> {
        Self::start_with(listener, app, &ServeSettings::default())
    }

    /// Serves `app` on `listener` with `settings` (`app` enforces the request limits; see
    /// [`whisk_core::api::router_with_limits`]).
    pub fn start_with(
        listener: TcpListener,
        app: axum::Router,
        settings: &ServeSettings,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopping) = watch::channel(false);
        let tls = settings
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
        let serving = Serving {
            http: http1(settings),
            app,
            handshake_timeout: settings.header_read_timeout,
            connections: Arc::new(Semaphore::new(settings.max_connections.max(1))),
        };
        let task = tokio::spawn(serving.accept(listener, tls, stopping));
        Ok(Self {
            addr,
            scheme: settings.scheme(),
            stop,
            task,
        })
    }

    /// The base URL of the API, `https://` when it serves TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops accepting, lets requests in flight finish (up to 5 s).
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::from_secs(5)).await;
    }

    /// Stops accepting, closes idle connections and lets requests in flight finish for up to
    /// `grace`.
    pub async fn shutdown_within(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, self.task).await;
    }
}

/// The HTTP/1.1 settings of every connection: the head's read timeout and, as hard caps above
/// the API's own limits (which answer with an error body), twice the header count and size.
fn http1(settings: &ServeSettings) -> hyper::server::conn::http1::Builder {
    let limits = &settings.limits;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_headers(limits.max_headers.saturating_mul(2).max(1))
        .max_header_size(
            limits
                .max_header_bytes
                .saturating_add(limits.max_uri_bytes)
                .saturating_mul(2),
        );
    http
}

/// What each accepted connection is served with.
#[derive(Clone)]
struct Serving {
    http: hyper::server::conn::http1::Builder,
    app: axum::Router,
    handshake_timeout: Duration,
    /// A permit per connection served ([`ServeSettings::max_connections`]).
    connections: Arc<Semaphore>,
}

impl Serving {
    /// Accepts connections until `stopping`, then lets them finish.
    async fn accept(
        self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        mut stopping: watch::Receiver<bool>,
    ) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            // At the cap, wait for a connection to close before accepting another.
            let permit = tokio::select! {
                permit = self.connections.clone().acquire_owned() => {
                    permit.expect("the connection semaphore is never closed")
                }
                _ = stopping.changed() => break,
            };
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopping.changed() => break,
            };
            let _ = tcp.set_nodelay(true);
            let serving = self.clone();
            let watcher = graceful.watcher();
            let stopping = stopping.clone();
            match &tls {
                None => {
                    tokio::spawn(async move {
                        serving.connection(tcp, watcher).await;
                        drop(permit);
                    });
                }
                Some(tls) => {
                    let handshake = tls.accept(tcp);
                    tokio::spawn(async move {
                        let _permit = permit;
                        let mut stopping = stopping;
                        tokio::select! {
                            done = tokio::time::timeout(serving.handshake_timeout, handshake) => {
                                match done {
                                    Ok(Ok(stream)) => serving.connection(stream, watcher).await,
                                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                    Err(_) => tracing::debug!("TLS handshake timed out"),
                                }
                            }
                            _ = stopping.changed() => {}
                        }
                    });
                }
            }
        }
        drop(listener);
        graceful.shutdown().await;
    }

    /// Serves one connection until it closes (or the graceful stop closes it).
    async fn connection<I>(self, io: I, watcher: hyper_util::server::graceful::Watcher)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper_util::service::TowerToHyperService::new(self.app);
        let conn = self
            .http
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}
