//! The authorizing TLS front of the embedded broker.
//!
//! Each device connection is TLS with a client certificate of the fleet
//! CA (not revoked); the certificate's common name is the identity. The
//! front reads every packet the client sends, checks CONNECT (client id,
//! will), SUBSCRIBE (each filter) and PUBLISH (topic) against
//! [`petrel_protocol::acl`], and passes allowed packets byte for byte to
//! the internal rumqttd on loopback; what the broker sends back is copied
//! unchanged. A refused CONNECT gets CONNACK "not authorized"; any other
//! refused packet, a malformed or oversized one, or the revocation of the
//! certificate closes the connection (MQTT 3.1.1 has no per-publish
//! refusal). Only MQTT 3.1.1 is spoken.

use crate::pki::Pki;
use bytes::{Bytes, BytesMut};
use petrel_protocol::acl::{Denied, Identity};
use petrel_tls::tokio_rustls;
use rumqttc::mqttbytes;
use rumqttc::Packet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Time allowed for the TLS handshake and the CONNECT packet.
const HANDSHAKE: Duration = Duration::from_secs(15);
/// Largest packet read from a client: the broker's payload limit and room
/// for the topic and header.
const MAX_PACKET: usize = super::MAX_PAYLOAD + 64 * 1024;

static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Connections the front refused or closed for a reason (bad or revoked
/// certificate, unauthorized or malformed packet) since start.
pub fn refused_connections() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Why a connection was refused or closed.
#[derive(Debug, thiserror::Error)]
enum FrontError {
    #[error("TLS handshake: {0}")]
    Handshake(String),
    #[error("no client certificate")]
    NoCertificate,
    #[error("{0}")]
    Certificate(#[from] petrel_tls::TlsError),
    #[error("certificate serial {0} is revoked")]
    Revoked(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("first packet is not CONNECT")]
    NotConnect,
    #[error("malformed or oversized packet: {0}")]
    Malformed(String),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("closed")]
    Closed,
}

/// What the front needs: its TLS acceptor, the internal broker, the PKI
/// (for revocations).
pub struct Front {
    pub acceptor: TlsAcceptor,
    pub upstream: SocketAddr,
    pub pki: Pki,
}

/// Serves device connections on `listener` until the task is dropped.
pub async fn run(listener: TcpListener, front: Front) {
    let front = Arc::new(front);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "MQTT front: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let front = front.clone();
        tokio::spawn(async move {
            match front.serve(tcp).await {
                Ok(()) | Err(FrontError::Closed) => {}
                Err(e) => {
                    REFUSED.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, error = %e, "MQTT front: connection refused or closed");
                }
            }
        });
    }
}

impl Front {
    async fn serve(&self, tcp: TcpStream) -> Result<(), FrontError> {
        let tls = tokio::time::timeout(HANDSHAKE, self.acceptor.accept(tcp))
            .await
            .map_err(|_| FrontError::Timeout)?
            .map_err(|e| FrontError::Handshake(e.to_string()))?;
        let der = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or(FrontError::NoCertificate)?;
        let peer = petrel_tls::peer_certificate(der)?;
        if self.pki.is_revoked(&peer.serial) {
            return Err(FrontError::Revoked(peer.serial));
        }
        let identity = Identity::from_common_name(&peer.identity)?;
        let (mut rd, mut wr) = tokio::io::split(tls);
        let mut buf = BytesMut::new();
        let (frame, packet) = tokio::time::timeout(HANDSHAKE, read_frame(&mut rd, &mut buf))
            .await
            .map_err(|_| FrontError::Timeout)??;
        let Packet::Connect(connect) = packet else {
            return Err(FrontError::NotConnect);
        };
        let will = connect.last_will.as_ref().map(|w| w.topic.as_str());
        if let Err(denied) = identity.may_connect(&connect.client_id, will) {
            // CONNACK, return code 5: not authorized
            let _ = wr.write_all(&[0x20, 0x02, 0x00, 0x05]).await;
            let _ = wr.shutdown().await;
            return Err(denied.into());
        }
        let (mut up_rd, mut up_wr) = TcpStream::connect(self.upstream).await?.into_split();
        up_wr.write_all(&frame).await?;
        let down = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut up_rd, &mut wr).await;
            let _ = wr.shutdown().await;
        });
        let mut revoked = self.pki.revoked();
        let result = loop {
            tokio::select! {
                next = read_frame(&mut rd, &mut buf) => {
                    let (frame, packet) = match next {
                        Ok(p) => p,
                        Err(e) => break Err(e),
                    };
                    if let Err(denied) = authorize(&identity, &packet) {
                        break Err(denied);
                    }
                    up_wr.write_all(&frame).await?;
                }
                changed = revoked.changed() => {
                    if changed.is_err() || revoked.borrow().contains(&peer.serial) {
                        break Err(FrontError::Revoked(peer.serial.clone()));
                    }
                }
            }
        };
        down.abort();
        result
    }
}

/// Checks one packet after CONNECT.
fn authorize(identity: &Identity, packet: &Packet) -> Result<(), FrontError> {
    match packet {
        Packet::Connect(_) => Err(FrontError::Malformed("a second CONNECT".into())),
        Packet::Publish(p) => Ok(identity.may_publish(&p.topic)?),
        Packet::Subscribe(s) => {
            for f in &s.filters {
                identity.may_subscribe(&f.path)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Reads one whole packet: its bytes as sent and its parse.
async fn read_frame(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> Result<(Bytes, Packet), FrontError> {
    loop {
        match mqttbytes::check(buf.iter(), MAX_PACKET) {
            Ok(header) => {
                let frame = buf.split_to(header.frame_length()).freeze();
                let packet = Packet::read(&mut BytesMut::from(&frame[..]), MAX_PACKET)
                    .map_err(|e| FrontError::Malformed(e.to_string()))?;
                return Ok((frame, packet));
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => match rd.read_buf(buf).await {
                Ok(0) => return Err(FrontError::Closed),
                Ok(_) => {}
                // a device that lost power or its link: gone, not refused
                Err(e) if is_hangup(&e) => return Err(FrontError::Closed),
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(FrontError::Malformed(e.to_string())),
        }
    }
}

fn is_hangup(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}
