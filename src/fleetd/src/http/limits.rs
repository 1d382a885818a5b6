//! Connection-level limits of the HTTPS server (review M6): how long a client may take to send
//! a request's headers, how long an HTTP/2 peer may stay silent, and how many connections may be
//! open at once (the one past the cap is closed at once, before its TLS handshake).
//!
//! It owns the connection slots and the hyper settings; it must never look at requests, headers
//! or bodies (per-request rules live in the handlers and middleware).

use std::future::Ready;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A client must send a whole request head (request line and headers) within this time; it also
/// closes an idle keep-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most (consoles, kiosks enrolling, API scripts).
pub const MAX_CONNECTIONS: usize = 1024;

/// Sets the header-read timeout (HTTP/1) and keep-alive pings (HTTP/2) on fleetd's server.
pub fn configure(builder: &mut Builder<TokioExecutor>) {
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
}

/// Sets TCP_NODELAY and takes a connection slot; past [`MAX_CONNECTIONS`] the connection is
/// closed at once.
#[derive(Debug, Clone)]
pub struct CappedAcceptor {
    slots: Arc<Semaphore>,
}

impl CappedAcceptor {
    pub fn new(max: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(max)) }
    }
}

impl<S> Accept<TcpStream, S> for CappedAcceptor {
    type Stream = Capped;
    type Service = S;
    type Future = Ready<io::Result<(Capped, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!("too many open HTTPS connections: one refused");
            return std::future::ready(Err(io::Error::other("too many open connections")));
        };
        let accepted = stream.set_nodelay(true).map(|()| (Capped { stream, _slot: slot }, service));
        std::future::ready(accepted)
    }
}

/// A TCP stream that holds its connection slot until it is dropped.
#[derive(Debug)]
pub struct Capped {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
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
