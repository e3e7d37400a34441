//! A TCP proxy between an agent and the controller's HTTP server that
//! counts the bytes sent to the agent, optionally caps bandwidth, and can
//! cut every open connection (a dropped link) or refuse new ones (a dead
//! link).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    downstream: Arc<AtomicU64>,
    cut: watch::Sender<u64>,
    refusing: Arc<AtomicBool>,
}

impl Proxy {
    /// Proxies `127.0.0.1:<port>` to `upstream`, at most `rate` bytes/s
    /// towards the client (0 = unlimited).
    pub async fn start(upstream: String, rate: u64) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let downstream = Arc::new(AtomicU64::new(0));
        let (cut, cut_rx) = watch::channel(0u64);
        let counter = downstream.clone();
        let refusing = Arc::new(AtomicBool::new(false));
        let refuse = refusing.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if refuse.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let (up, counter, mut cut_rx) = (upstream.clone(), counter.clone(), cut_rx.clone());
                // only cuts after this connection opened concern it
                cut_rx.borrow_and_update();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&up).await {
                        pipe(client, server, counter, rate, cut_rx).await;
                    }
                });
            }
        });
        Ok(Proxy {
            port,
            downstream,
            cut,
            refusing,
        })
    }

    /// Cuts every open connection every `period`, for the rest of the
    /// test's runtime.
    pub fn cut_every(&self, period: Duration) {
        let cut = self.cut.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                // (send_modify: never hold a borrow while sending)
                cut.send_modify(|n| *n += 1);
            }
        });
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Bytes sent from the upstream to clients so far.
    pub fn bytes_down(&self) -> u64 {
        self.downstream.load(Ordering::Relaxed)
    }

    /// From now on (`true`) new connections are closed at once, and the
    /// open ones cut: nothing gets through until `refuse(false)`.
    pub fn refuse(&self, yes: bool) {
        self.refusing.store(yes, Ordering::Relaxed);
        if yes {
            self.cut_all();
        }
    }

    /// Drops every open connection.
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    counter: Arc<AtomicU64>,
    rate: u64,
    mut cut: watch::Receiver<u64>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
            counter.fetch_add(n as u64, Ordering::Relaxed);
            if rate > 0 {
                tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
}
