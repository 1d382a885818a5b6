//! The client certificate of an HTTPS connection, for the one route that uses it (kiosk
//! certificate renewal, review H4). The HTTPS listener asks every client for a certificate from
//! the fleet CA but lets those without one in (browsers, a kiosk still enrolling): rustls checks
//! the chain and validity of any certificate presented, and [`PeerAcceptor`] hands the
//! connection's certificate to each of its requests as a [`PeerCert`] extension.
//!
//! Renewal goes over HTTPS rather than MQTT because the kiosk already speaks HTTPS to fleetd
//! (enrolment), the request needs an answer (the certificate), and the broker's ACL would need
//! request/reply topics; the client certificate proves the same thing on either path.
//!
//! It owns nothing but the hand-over: it never decides who may do what (the registry does) and
//! never logs certificates.

use std::future::Future;
use std::io;
use std::pin::Pin;

use axum::Extension;
use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsAcceptor;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tower_layer::Layer;

use super::limits::CappedAcceptor;

/// The leaf certificate the client presented on this connection (verified by rustls against
/// the fleet CA), or `None`.
#[derive(Debug, Clone)]
pub struct PeerCert(pub Option<CertificateDer<'static>>);

/// TLS (with the connection cap inside), then the peer's certificate as a request extension.
#[derive(Clone)]
pub struct PeerAcceptor {
    inner: RustlsAcceptor<CappedAcceptor>,
}

impl PeerAcceptor {
    pub fn new(inner: RustlsAcceptor<CappedAcceptor>) -> Self {
        Self { inner }
    }
}

impl<S: Send + 'static> Accept<TcpStream, S> for PeerAcceptor {
    type Stream = <RustlsAcceptor<CappedAcceptor> as Accept<TcpStream, S>>::Stream;
    type Service = axum::middleware::AddExtension<S, PeerCert>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let handshake = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            let leaf = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
            let peer = PeerCert(leaf.map(|c| c.clone().into_owned()));
            Ok((stream, Extension(peer).layer(service)))
        })
    }
}
