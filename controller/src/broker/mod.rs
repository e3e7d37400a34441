//! The MQTT broker side of the controller.
//!
//! - [`embedded`]: rumqttd in-process, on an ephemeral loopback port only
//!   the controller and the front use.
//! - [`front`]: the front of the embedded broker, where devices connect:
//!   it holds each connection until the broker has answered its CONNECT
//!   (rumqttd 0.20 otherwise breaks for good on a client that vanishes
//!   mid-connect) and caps the connections; in secure mode, mutual TLS,
//!   then every CONNECT, SUBSCRIBE and PUBLISH checked against the
//!   certificate's identity (`petrel_protocol::acl`) before it is passed
//!   on. rumqttd has no per-topic authorization hook.
//! - [`limits`]: how many device connections one process can hold.
//! - [`sessions`]: one connection per client id at a time reaches the
//!   broker (rumqttd 0.20 races a client's old and new connections).
//! - [`mosquitto`]: the same rules as a Mosquitto configuration, for
//!   fleets on an external broker.

pub mod embedded;
pub mod front;
pub mod limits;
pub mod mosquitto;
pub mod sessions;

pub use embedded::{start_embedded, MAX_PAYLOAD};

use crate::pki::Pki;
use petrel_protocol::BrokerUrl;
use petrel_tls::{rustls::ClientConfig, tokio_rustls::TlsAcceptor, ClientAuth};
use std::net::SocketAddr;

/// Which MQTT broker the controller uses.
#[derive(Debug, Clone)]
pub enum BrokerMode {
    /// Start rumqttd in-process; devices connect on this address.
    Embedded { listen: SocketAddr },
    /// Use an external broker, `mqtts://host:port` (`mqtt://` if insecure).
    External { url: String },
}

/// How the controller's own session reaches the broker, and what devices
/// are told to connect to.
pub struct BrokerLink {
    pub url: BrokerUrl,
    /// TLS for the controller's session (external `mqtts://` brokers).
    pub tls: Option<ClientConfig>,
    /// The broker URL written into provisioned agent configs.
    pub device_url: String,
}

/// Starts the embedded broker (behind the authorizing front when `pki` is
/// given) or prepares the connection to an external one.
pub async fn setup(
    mode: &BrokerMode,
    pki: Option<&Pki>,
    advertise_host: &str,
) -> Result<BrokerLink, String> {
    let local = |port| BrokerUrl {
        tls: false,
        host: "127.0.0.1".into(),
        port,
        username: None,
        password: None,
    };
    match (mode, pki) {
        (BrokerMode::Embedded { listen }, pki) => {
            let internal = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no loopback port for the internal broker: {e}"))?;
            start_embedded(internal);
            let listener = crate::listen::bind(listen)
                .await
                .map_err(|e| format!("binding the MQTT listener on {listen}: {e}"))?;
            let tls = match pki {
                Some(pki) => {
                    let (cert, key) = pki.server_pems().map_err(|e| e.to_string())?;
                    let config =
                        petrel_tls::server_config(pki.ca_pem(), &cert, &key, ClientAuth::Required)
                            .map_err(|e| e.to_string())?;
                    Some((TlsAcceptor::from(config), pki.clone()))
                }
                None => None,
            };
            let max_connections = limits::device_connections();
            let scheme = if tls.is_some() { "mqtts" } else { "mqtt" };
            let front = front::Front {
                tls,
                upstream: internal,
                max_connections,
                sessions: Default::default(),
            };
            tokio::spawn(front::run(listener, front));
            if pki.is_some() {
                tracing::info!(%listen, max_connections, "MQTT over mutual TLS, per-device authorization");
            } else {
                tracing::info!(%listen, max_connections, "MQTT in plaintext (--insecure)");
            }
            Ok(BrokerLink {
                url: local(internal.port()),
                tls: None,
                device_url: format!("{scheme}://{advertise_host}:{}", listen.port()),
            })
        }
        (BrokerMode::External { url }, pki) => external(url, pki),
    }
}

fn external(text: &str, pki: Option<&Pki>) -> Result<BrokerLink, String> {
    let url = BrokerUrl::parse(text).map_err(|e| e.to_string())?;
    let tls = match (url.tls, pki) {
        (true, Some(pki)) => {
            let (cert, key) = pki.server_pems().map_err(|e| e.to_string())?;
            let config = petrel_tls::client_config(pki.ca_pem(), Some((&cert, &key)))
                .map_err(|e| e.to_string())?;
            Some(config)
        }
        (true, None) => {
            return Err(format!("broker {text:?}: mqtts:// needs the fleet PKI; run without --insecure"))
        }
        (false, Some(_)) => {
            return Err(format!("broker {text:?} is plaintext: use mqtts:// (see `petrel broker mosquitto-config`) or run with --insecure"))
        }
        (false, None) => None,
    };
    let mut device_url = url.clone();
    device_url.username = None;
    device_url.password = None;
    let scheme = if url.tls { "mqtts" } else { "mqtt" };
    Ok(BrokerLink {
        device_url: format!("{scheme}://{}", device_url.address()),
        url,
        tls,
    })
}
