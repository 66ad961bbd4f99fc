//! A self-signed certificate for the TLS tests (rcgen).

use std::path::PathBuf;
use whisk_examples::server::{ServeSettings, Tls};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
pub struct Cert {
    /// The directory holding `cert.pem` and `key.pem`.
    pub dir: tempfile::TempDir,
    /// The certificate, PEM.
    pub pem: String,
}

impl Cert {
    /// A new key pair and certificate in a temporary directory.
    pub fn generate() -> Self {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let generated = rcgen::generate_simple_self_signed(names).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem = generated.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &pem).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            generated.signing_key.serialize_pem(),
        )
        .unwrap();
        Self { dir, pem }
    }

    /// The certificate's PEM file.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The private key's PEM file.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// A client that trusts only this certificate.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }

    /// Serving settings with this certificate and the default limits.
    pub fn settings(&self) -> ServeSettings {
        ServeSettings {
            tls: Some(Tls::from_pem_files(&self.cert(), &self.key()).unwrap()),
            ..ServeSettings::default()
        }
    }
}
