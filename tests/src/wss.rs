//! `wss://` clients for the tests: rustls, trusting the test CA, with
//! tungstenite over the TLS stream.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::net::TcpStream;

use crate::{connect, test_certs, tungstenite, RunningServer};
use tungstenite::WebSocket;

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;
pub type TlsClient = WebSocket<TlsStream>;

pub fn client_config_builder() -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(&test_certs().ca).expect("read the test CA");
    roots.add(ca).expect("add the test CA");
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
}

pub fn client_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(client_config_builder().with_no_client_auth()))
        .clone()
}

/// A client that presents the test client certificate.
pub fn client_config_with_cert() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let cert = CertificateDer::from_pem_file(&test_certs().client_cert)
                .expect("read the client certificate");
            let key = PrivateKeyDer::from_pem_file(&test_certs().client_key).expect("read the client key");
            Arc::new(
                client_config_builder()
                    .with_client_auth_cert(vec![cert], key)
                    .expect("a client certificate"),
            )
        })
        .clone()
}

pub fn wss_request(server: &RunningServer, path: &str) -> tungstenite::handshake::client::Request {
    use tungstenite::client::IntoClientRequest;
    format!("wss://127.0.0.1:{}{path}", server.port())
        .into_client_request()
        .expect("a valid URL")
}

pub fn tls_stream(server: &RunningServer) -> TlsStream {
    tls_stream_with(server, client_config())
}

pub fn tls_stream_with(server: &RunningServer, config: Arc<ClientConfig>) -> TlsStream {
    let tcp = connect(server);
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let conn = ClientConnection::new(config, name).expect("a TLS client");
    StreamOwned::new(conn, tcp)
}

/// The handshake over TLS; `Err` is "HTTP <status>" for a refusal, or the
/// error.
pub fn try_wss(
    server: &RunningServer,
    request: tungstenite::handshake::client::Request,
) -> Result<TlsClient, String> {
    match tungstenite::client(request, tls_stream(server)) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(format!("HTTP {}", response.status().as_u16()))
        }
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e.to_string()),
        Err(tungstenite::HandshakeError::Interrupted(_)) => unreachable!("blocking socket"),
    }
}

pub fn wss(server: &RunningServer, request: tungstenite::handshake::client::Request) -> TlsClient {
    let uri = request.uri().to_string();
    try_wss(server, request)
        .unwrap_or_else(|e| panic!("wss handshake to {uri} failed: {e}\n{}", server.logs()))
}
