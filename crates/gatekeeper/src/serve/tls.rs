//! HTTPS: the TLS acceptor (rustls on *ring*) and a listener that completes handshakes
//! in tasks of their own, each bounded in time, with a bound on handshakes in progress.

use super::{ServeError, TlsFiles};
use axum::serve::Listener;
use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
    server::TlsStream,
};

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes in progress at most (further connections wait to be accepted).
const MAX_HANDSHAKES: usize = 256;

/// A TLS acceptor (rustls on *ring*) over the certificate chain and key in `files`.
pub(super) fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    let cert_error = |reason: String| ServeError::Tls {
        what: "certificate",
        path: files.cert.display().to_string(),
        reason,
    };
    let key_error = |reason: String| ServeError::Tls {
        what: "key",
        path: files.key.display().to_string(),
        reason,
    };
    let certs = read_certs(&files.cert).map_err(cert_error)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| key_error(pem_reason(&e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| key_error(format!("it does not go with the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_reason(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(&e))?;
    if certs.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    Ok(certs)
}

fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "it holds no PEM item of the expected kind".into(),
        other => format!("it is not valid PEM ({other:?})"),
    }
}

/// Handshakes in progress at most from one IP address (further connections from it are
/// closed until one finishes).
const MAX_HANDSHAKES_PER_SOURCE: usize = 8;

/// Accepts connections and completes their TLS handshakes in tasks of their own, so a
/// slow client never holds up others; hands the finished streams to axum. Handshakes
/// are bounded in time, in number, and in number per source address.
pub(super) struct TlsListener<S> {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<S>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl<S> TlsListener<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(super) fn new<L>(mut tcp: L, tls: TlsAcceptor) -> Self
    where
        L: Listener<Io = S, Addr = SocketAddr>,
    {
        let local = tcp.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(64);
        let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let in_progress: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let (stream, peer) = tcp.accept().await;
                let source = peer.ip();
                {
                    let mut open = in_progress.lock().unwrap_or_else(PoisonError::into_inner);
                    let n = open.entry(source).or_insert(0);
                    if *n >= MAX_HANDSHAKES_PER_SOURCE {
                        tracing::debug!(target: "medrec::gatekeeper", %source, "too many TLS handshakes from one address: closed");
                        continue;
                    }
                    *n += 1;
                }
                let (tls, tx, in_progress) = (tls.clone(), tx.clone(), Arc::clone(&in_progress));
                tokio::spawn(async move {
                    let _permit = permit;
                    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
                    {
                        let mut open = in_progress.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some(n) = open.get_mut(&source) {
                            *n -= 1;
                            if *n == 0 {
                                open.remove(&source);
                            }
                        }
                    }
                    match outcome {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(target: "medrec::gatekeeper", peer = %source, %err, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(target: "medrec::gatekeeper", peer = %source, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Self { local, ready, acceptor }
    }
}

impl<S> Drop for TlsListener<S> {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl<S> Listener for TlsListener<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = TlsStream<S>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor stopped: accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
