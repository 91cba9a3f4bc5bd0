//! Connections cannot hold all the server's slots: at most
//! [`ConnectionLimits::per_source`] connections are open from one IP address at a time
//! (a further one is closed as soon as it is accepted), and a connection on which
//! nothing is read or written for [`ConnectionLimits::idle`] is closed (an idle
//! keep-alive connection, or a client trickling its headers or reading nothing). Both
//! apply before the TLS handshake, which has its own time limit.

use axum::serve::Listener;
use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_io_timeout::TimeoutStream;

/// The bounds on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once from one IP address.
    pub per_source: usize,
    /// How long a connection may send and receive nothing.
    pub idle: Duration,
}

impl Default for ConnectionLimits {
    /// 256 connections per address; 30 s idle.
    fn default() -> Self {
        Self { per_source: 256, idle: Duration::from_secs(30) }
    }
}

type Open = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// A listener whose connections obey [`ConnectionLimits`].
#[derive(Debug)]
pub(crate) struct Guarded<L> {
    inner: L,
    limits: ConnectionLimits,
    open: Open,
}

impl<L> Guarded<L> {
    /// `inner`'s connections, bounded by `limits`.
    pub(crate) fn new(inner: L, limits: ConnectionLimits) -> Self {
        Self { inner, limits, open: Open::default() }
    }
}

/// A connection counted against its source address until dropped.
#[derive(Debug)]
pub(crate) struct Counted<S> {
    stream: S,
    source: IpAddr,
    open: Open,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A guarded connection: counted, and closed when idle.
pub(crate) type GuardedIo<S> = Pin<Box<TimeoutStream<Counted<S>>>>;

impl<L> Listener for Guarded<L>
where
    L: Listener<Addr = SocketAddr>,
{
    type Io = GuardedIo<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = self.inner.accept().await;
            let source = peer.ip();
            {
                let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
                let n = open.entry(source).or_insert(0);
                if *n >= self.limits.per_source {
                    tracing::debug!(target: "medrec::gatekeeper", %source, "too many connections from one address: closed");
                    continue;
                }
                *n += 1;
            }
            let counted = Counted { stream, source, open: Arc::clone(&self.open) };
            let mut io = TimeoutStream::new(counted);
            io.set_read_timeout(Some(self.limits.idle));
            io.set_write_timeout(Some(self.limits.idle));
            return (Box::pin(io), peer);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    #[tokio::test]
    async fn one_source_cannot_hold_more_than_its_share_and_idle_connections_close() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let limits = ConnectionLimits { per_source: 2, idle: Duration::from_millis(300) };
        let mut listener = Guarded::new(tcp, limits);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let (mut first, _) = listener.accept().await;
        let (_second, _) = listener.accept().await;
        // The third is closed as soon as it is accepted (and nothing is handed out).
        let third = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(third.is_err(), "a third connection from the same address was handed out");
        let mut buf = [0u8; 1];
        let third = tokio::time::timeout(Duration::from_secs(5), clients[2].read(&mut buf)).await;
        assert!(matches!(third, Ok(Ok(0)) | Ok(Err(_))), "the third connection was not closed");
        // An idle connection times out on the server's side.
        let read = first.read(&mut buf).await;
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
        // Dropping a connection frees its place for the same source.
        drop(first);
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let (mut accepted, _) = listener.accept().await;
        fourth.write_all(b"x").await.unwrap();
        assert_eq!(accepted.read(&mut buf).await.unwrap(), 1);
    }
}
