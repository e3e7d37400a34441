//! The front of the embedded broker: every device connection goes
//! through it, so the broker (on loopback) is shielded from clients that
//! vanish mid-CONNECT and from more connections than it and the process's
//! open-file limit can take; in secure mode it also authorizes.
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

use super::sessions::Sessions;
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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::{rustls, TlsAcceptor};

/// Time allowed for the TLS handshake and the CONNECT packet.
const HANDSHAKE: Duration = Duration::from_secs(15);
/// How long an ended connection waits for the broker to close its side
/// (it reads our close, sends its disconnect event, closes: milliseconds
/// unless its router lags).
const LET_GO: Duration = Duration::from_secs(60);
/// Largest packet read from a client: the broker's payload limit and room
/// for the topic and header.
const MAX_PACKET: usize = super::MAX_PAYLOAD + 64 * 1024;

static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Connections the front refused or closed for a reason (bad or revoked
/// certificate, unauthorized or malformed packet) since start.
pub fn refused_connections() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

static OPEN: AtomicU64 = AtomicU64::new(0);

/// Device connections the front holds now.
pub fn open_connections() -> u64 {
    OPEN.load(Ordering::Relaxed)
}

/// Counts a connection in [`OPEN`] while it lives.
struct Open;

impl Open {
    fn new() -> Open {
        OPEN.fetch_add(1, Ordering::Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
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

/// What the front needs: TLS (with the PKI, for certificates and
/// revocations) or none, the internal broker, and how many device
/// connections it may hold.
pub struct Front {
    /// `None`: lab mode (`--insecure`), plain TCP and no identity; the
    /// front then only shields the broker (see [`Front::relay`]).
    pub tls: Option<(TlsAcceptor, Pki)>,
    pub upstream: SocketAddr,
    /// Connections above this are closed at once (counted, warned).
    pub max_connections: usize,
    /// One connection per client id at a time.
    pub sessions: Arc<Sessions>,
}

/// A device's proven identity and the revocations to follow.
struct Auth {
    identity: Identity,
    serial: String,
    revoked: tokio::sync::watch::Receiver<Arc<std::collections::BTreeSet<String>>>,
}

/// Serves device connections on `listener` until the task is dropped.
pub async fn run(listener: TcpListener, front: Front) {
    let slots = Arc::new(Semaphore::new(front.max_connections));
    let front = Arc::new(front);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // out of file descriptors or the like: back off, never spin
                tracing::warn!(error = %e, "MQTT front: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            over_limit(front.max_connections);
            continue;
        };
        let front = front.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = Open::new();
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

/// Counts a connection closed for want of a slot; warns at most every 10 s.
fn over_limit(max: usize) {
    static LAST_WARNED_S: AtomicU64 = AtomicU64::new(0);
    REFUSED.fetch_add(1, Ordering::Relaxed);
    let now_s = crate::now_ms() / 1000;
    let last = LAST_WARNED_S.load(Ordering::Relaxed);
    if now_s >= last + 10 && LAST_WARNED_S.swap(now_s, Ordering::Relaxed) == last {
        tracing::warn!(
            max,
            "MQTT front: connection limit reached, closing new connections (see ARCHITECTURE.md, limits)"
        );
    }
}

impl Front {
    async fn serve(&self, tcp: TcpStream) -> Result<(), FrontError> {
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.relay(tcp, None).await,
            Some((acceptor, pki)) => {
                let tls = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp))
                    .await
                    .map_err(|_| FrontError::Timeout)?
                    .map_err(|e| FrontError::Handshake(e.to_string()))?;
                let auth = authenticate(tls.get_ref().1, pki)?;
                self.relay(tls, Some(auth)).await
            }
        }
    }

    /// Passes one connection to the broker. CONNECT is checked (with an
    /// identity) and forwarded, then the front waits for the broker's
    /// CONNACK before anything else, however the device behaves: rumqttd
    /// 0.20 leaves a stale last-will handle when a client vanishes before
    /// its CONNACK is written, and the next CONNECT with that client id
    /// panics holding the broker's will lock, after which it accepts no
    /// one (tests/embedded_broker_survives_abrupt_clients.rs). Without an
    /// identity the rest is copied as is; with one, every packet is
    /// checked.
    async fn relay<S>(&self, stream: S, auth: Option<Auth>) -> Result<(), FrontError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut buf = BytesMut::new();
        let (frame, packet) = tokio::time::timeout(HANDSHAKE, read_frame(&mut rd, &mut buf))
            .await
            .map_err(|_| FrontError::Timeout)??;
        let Packet::Connect(connect) = packet else {
            return Err(FrontError::NotConnect);
        };
        if let Some(auth) = &auth {
            let will = connect.last_will.as_ref().map(|w| w.topic.as_str());
            if let Err(denied) = auth.identity.may_connect(&connect.client_id, will) {
                // CONNACK, return code 5: not authorized
                let _ = wr.write_all(&[0x20, 0x02, 0x00, 0x05]).await;
                let _ = wr.shutdown().await;
                return Err(denied.into());
            }
        }
        let Some(session) = self.sessions.enter(&connect.client_id).await else {
            // a newer connection of this client id came while this one
            // waited: the device has already moved on
            return Err(FrontError::Closed);
        };
        let upstream = TcpStream::connect(self.upstream).await?;
        let _ = upstream.set_nodelay(true);
        let (mut up_rd, mut up_wr) = upstream.into_split();
        up_wr.write_all(&frame).await?;
        // no time limit: closing before the broker's CONNACK is exactly
        // what breaks rumqttd, however long its router lags
        let mut up_buf = BytesMut::new();
        let (ack, _) = read_frame(&mut up_rd, &mut up_buf).await?;
        // the broker has answered: from here a vanished device is harmless
        let first = [&ack[..], &up_buf[..]].concat();
        let mut down = tokio::spawn(down(first, up_rd, wr));
        let up = async {
            match auth {
                None => {
                    up_wr.write_all(&buf).await?;
                    let _ = tokio::io::copy(&mut rd, &mut up_wr).await;
                    Ok(())
                }
                Some(auth) => checked(&mut rd, &mut buf, &mut up_wr, auth).await,
            }
        };
        let (result, broker_closed) = tokio::select! {
            r = up => (r, false),
            _ = session.superseded() => (Ok(()), false),
            _ = &mut down => (Ok(()), true),
        };
        // end the broker's side and wait until it let go (its disconnect
        // sent) before a newer connection of this client id goes on
        let _ = up_wr.shutdown().await;
        if !broker_closed {
            let _ = tokio::time::timeout(LET_GO, &mut down).await;
            down.abort();
        }
        drop(session);
        result
    }
}

/// Sends the device `first` (the CONNACK and what came with it), then
/// what the broker sends until the broker closes; once the device is
/// gone, the rest is read and dropped, so the broker's close is still
/// seen.
async fn down(first: Vec<u8>, mut up_rd: impl AsyncRead + Unpin, mut wr: impl AsyncWrite + Unpin) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut device = wr.write_all(&first).await.is_ok();
    loop {
        match up_rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if device && wr.write_all(&buf[..n]).await.is_err() {
                    device = false;
                }
            }
        }
    }
    if device {
        let _ = wr.shutdown().await;
    }
}

/// The identity in a device's certificate, unless it is revoked.
fn authenticate(conn: &rustls::ServerConnection, pki: &Pki) -> Result<Auth, FrontError> {
    let der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(FrontError::NoCertificate)?;
    let peer = petrel_tls::peer_certificate(der)?;
    if pki.is_revoked(&peer.serial) {
        return Err(FrontError::Revoked(peer.serial));
    }
    Ok(Auth {
        identity: Identity::from_common_name(&peer.identity)?,
        serial: peer.serial,
        revoked: pki.revoked(),
    })
}

/// Passes the packets of an authenticated device that its identity
/// allows, until it closes, sends a refused packet or is revoked.
async fn checked(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    up_wr: &mut (impl AsyncWrite + Unpin),
    mut auth: Auth,
) -> Result<(), FrontError> {
    loop {
        tokio::select! {
            next = read_frame(rd, buf) => {
                let (frame, packet) = next?;
                authorize(&auth.identity, &packet)?;
                up_wr.write_all(&frame).await?;
            }
            changed = auth.revoked.changed() => {
                if changed.is_err() || auth.revoked.borrow().contains(&auth.serial) {
                    return Err(FrontError::Revoked(auth.serial.clone()));
                }
            }
        }
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
