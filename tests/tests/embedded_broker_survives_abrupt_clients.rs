//! Devices on flaky links drop their connection at any moment, also
//! between sending CONNECT and receiving CONNACK. rumqttd 0.20 leaves a
//! stale last-will handle behind when that happens, and the next CONNECT
//! with the same client id panics while holding the broker's will lock:
//! the lock is poisoned and from then on the broker accepts no one (seen
//! in the fleet simulator's partition scenario). The controller's front
//! keeps the broker's side of a connection open until the broker has
//! answered the CONNECT, so this test hammers the embedded broker with
//! such clients and then expects a well-behaved one to connect at once.

use petrel_controller::broker::{self, BrokerMode};
use rumqttc::mqttbytes::v4::Connect;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Sends CONNECT as `id`, then resets the connection after `wait`.
async fn connect_and_reset(addr: SocketAddr, id: &str, wait: Duration) -> anyhow::Result<()> {
    let mut tcp = TcpStream::connect(addr).await?;
    let mut buf = bytes::BytesMut::new();
    Connect::new(id).write(&mut buf)?;
    tcp.write_all(&buf).await?;
    tokio::time::sleep(wait).await;
    // an abortive close (RST), as a device whose link vanished
    tcp.set_zero_linger()?;
    drop(tcp);
    Ok(())
}

/// Whether a client with `id` gets its CONNACK within `within`.
async fn connects(addr: SocketAddr, id: &str, within: Duration) -> bool {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (_client, mut events) = AsyncClient::new(opts, 10);
    let acked = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    tokio::time::timeout(within, acked).await.unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_that_vanish_mid_connect_do_not_take_the_embedded_broker_down() -> anyhow::Result<()>
{
    let listen = free_port()?;
    broker::setup(&BrokerMode::Embedded { listen }, None, "127.0.0.1")
        .await
        .map_err(anyhow::Error::msg)?;
    assert!(
        connects(listen, "first", Duration::from_secs(10)).await,
        "the broker answers at all"
    );
    for round in 0..60u64 {
        let wait = Duration::from_micros(round % 6 * 400);
        // the same client id twice: the second CONNECT meets what the
        // first one left behind
        connect_and_reset(listen, "flaky", wait).await?;
        connect_and_reset(listen, "flaky", wait).await?;
    }
    assert!(
        connects(listen, "flaky", Duration::from_secs(10)).await,
        "the flaky device itself can still connect"
    );
    assert!(
        connects(listen, "bystander", Duration::from_secs(10)).await,
        "a device that did nothing wrong can still connect"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_above_the_fronts_limit_are_closed_and_a_freed_slot_is_reused(
) -> anyhow::Result<()> {
    let internal = free_port()?;
    broker::start_embedded(internal);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let listen = listener.local_addr()?;
    let front = broker::front::Front {
        tls: None,
        upstream: internal,
        max_connections: 2,
        sessions: Default::default(),
    };
    tokio::spawn(broker::front::run(listener, front));
    let refused_before = broker::front::refused_connections();

    let mut held = Vec::new();
    for id in ["one", "two"] {
        held.push(session(listen, id).await?);
    }
    assert!(
        !connects(listen, "three", Duration::from_secs(3)).await,
        "a third connection is over the limit"
    );
    assert!(broker::front::refused_connections() > refused_before);
    drop(held.pop());
    assert!(
        connects(listen, "three", Duration::from_secs(10)).await,
        "a freed slot takes the next device"
    );
    Ok(())
}

/// A connected client, its event loop polled until this is dropped.
struct Held(tokio::task::JoinHandle<()>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects `id` and keeps it connected while the result lives.
async fn session(addr: SocketAddr, id: &str) -> anyhow::Result<Held> {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(opts, 10);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let _client = client;
        let mut tx = Some(tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), rx).await??;
    Ok(Held(task))
}
