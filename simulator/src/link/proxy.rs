//! The fault layer's proxy: one listener per upstream on all addresses
//! (only loopback peers are served), the device told by the address it
//! was reached on. A connection waits out a partition before it reaches
//! the upstream; its bytes then go through two shaped pipes (delay with
//! jitter, the device's bandwidth, stalls, partitions) until either side
//! closes, the profile drops it, or the device loses power.

use super::{DeviceLink, Dir, Kind, Links};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// Starts proxying connections on a new listener to `upstream`; returns
/// the port devices connect to (on their own address).
pub async fn start(links: Arc<Links>, upstream: SocketAddr, kind: Kind) -> std::io::Result<u16> {
    serve(upstream, kind, move |client, peer| {
        client
            .local_addr()
            .ok()
            .filter(|_| peer.ip().is_loopback())
            .and_then(|a| super::index_of(a.ip()))
            .and_then(|i| links.get(i).cloned())
    })
    .await
}

/// Starts proxying every loopback connection on a new listener to
/// `upstream` through the one `link` (a single real device, reached on
/// 127.0.0.1, as the crash soak runs it); returns the port.
pub async fn start_one(
    link: Arc<DeviceLink>,
    upstream: SocketAddr,
    kind: Kind,
) -> std::io::Result<u16> {
    serve(upstream, kind, move |_, peer| {
        peer.ip().is_loopback().then(|| link.clone())
    })
    .await
}

/// The accept loop: `pick` names the link of a new connection (`None`:
/// refused).
async fn serve<F>(upstream: SocketAddr, kind: Kind, pick: F) -> std::io::Result<u16>
where
    F: Fn(&TcpStream, SocketAddr) -> Option<Arc<DeviceLink>> + Send + 'static,
{
    let listener = petrel_controller::listen::bind(("0.0.0.0", 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // out of file descriptors or the like: back off, never spin
                    tracing::warn!("fault layer: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Some(link) = pick(&client, peer) {
                tokio::spawn(connection(client, upstream, link, kind));
            }
        }
    });
    Ok(port)
}

/// One device connection, from accept to close.
async fn connection(client: TcpStream, upstream: SocketAddr, link: Arc<DeviceLink>, kind: Kind) {
    let mut cut = link.cut.subscribe();
    cut.borrow_and_update();
    // a partition is a black hole: the connection waits, silent
    while link.partitioned() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = cut.changed() => return,
        }
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let life = link.lifetime();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let both = async {
        tokio::join!(
            pipe(cr, sw, &link, kind, Dir::Up),
            pipe(sr, cw, &link, kind, Dir::Down)
        )
    };
    let dropped = async {
        match life {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = both => {}
        _ = dropped => {
            link.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        _ = cut.changed() => {
            link.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Moves bytes from `r` to `w` as the link allows: each chunk leaves after
/// its delay (in order), within the bandwidth, outside stalls and
/// partitions. The write side is shut when the read side ends.
async fn pipe<R, W>(mut r: R, mut w: W, link: &DeviceLink, kind: Kind, dir: Dir)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let chunk = link.chunk(dir);
    let reader = async move {
        loop {
            let mut buf = vec![0u8; chunk];
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    let at = Instant::now() + link.delay();
                    if tx.send((at, buf)).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async {
        let mut last = Instant::now();
        while let Some((at, buf)) = rx.recv().await {
            last = last.max(at);
            sleep_until(last).await;
            passable(link).await;
            sleep_until(link.reserve(dir, buf.len())).await;
            if w.write_all(&buf).await.is_err() {
                break;
            }
            link.counters
                .slot(kind, dir)
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Waits while the link is partitioned or stalled.
async fn passable(link: &DeviceLink) {
    loop {
        if link.partitioned() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        match link.stalled_until(Instant::now()) {
            Some(end) => sleep_until(end).await,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests;
