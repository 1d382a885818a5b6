//! The browser-facing console's certificate when an operator brings their own (`--web-cert`,
//! `--web-key`, review M11): from the enterprise's or a public CA, so that workstations need
//! not trust fleetd's CA at all. Kiosks keep pinning fleetd's CA: they use the second listener
//! (`--device-listen`), which serves fleetd's own server certificate.
//!
//! Reads the operator's files (again at every renewal check, so a certificate the operator
//! replaced is served without a restart); never writes them and never logs the key.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use super::{PkiError, invalid, load_certs};

/// A rustls server configuration presenting the operator's certificate chain `cert` with the
/// key `key` (PEM files), without asking for client certificates.
pub fn operator_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let chain = load_certs(cert)?;
    if chain.is_empty() {
        return Err(invalid(cert, "no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, e))?;
    let mut config =
        rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
