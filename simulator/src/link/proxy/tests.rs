use super::*;
use crate::link::{address, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that echoes what it is sent.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 65536];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn links(profiles: Vec<Profile>) -> Arc<Links> {
    let devices = profiles
        .into_iter()
        .enumerate()
        .map(|(i, p)| Arc::new(DeviceLink::new(p, i as u64)))
        .collect();
    Arc::new(Links { first: 0, devices })
}

fn lan() -> Profile {
    Profile::builtin().remove(0)
}

#[tokio::test]
async fn each_device_is_told_by_its_address_and_counted_apart() {
    let links = links(vec![lan(), lan()]);
    let port = start(links.clone(), echo().await, Kind::Http)
        .await
        .unwrap();
    let mut s = TcpStream::connect((address(1), port)).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    let d = &links.devices[1].counters;
    assert_eq!(
        (d.get(Kind::Http, Dir::Up), d.get(Kind::Http, Dir::Down)),
        (5, 5)
    );
    assert_eq!(links.devices[0].counters.get(Kind::Http, Dir::Down), 0);
}

#[tokio::test]
async fn latency_and_bandwidth_slow_the_link_down() {
    let slow = Profile {
        latency_ms: 100,
        down_kbps: Some(800), // 100 kB/s
        ..lan()
    };
    let links = links(vec![slow]);
    let port = start(links, echo().await, Kind::Http).await.unwrap();
    let mut s = TcpStream::connect((address(0), port)).await.unwrap();
    let started = std::time::Instant::now();
    let data = vec![7u8; 50_000];
    s.write_all(&data).await.unwrap();
    let mut back = vec![0u8; 50_000];
    s.read_exact(&mut back).await.unwrap();
    // two delays of 100 ms and 50 kB at 100 kB/s: at least 0.6 s
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(back, data);
}

#[tokio::test]
async fn a_partition_holds_traffic_and_a_power_loss_cuts_the_connection() {
    let links = links(vec![lan()]);
    let port = start(links.clone(), echo().await, Kind::Mqtt)
        .await
        .unwrap();
    let mut s = TcpStream::connect((address(0), port)).await.unwrap();
    let link = links.devices[0].clone();
    // the connection reaches the upstream before the partition
    s.write_all(b"hi").await.unwrap();
    let mut two = [0u8; 2];
    s.read_exact(&mut two).await.unwrap();
    link.set_partitioned(true);
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    let held = tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut buf)).await;
    assert!(held.is_err(), "nothing crosses a partition");
    link.set_partitioned(false);
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    link.cut_all();
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "cut: {n:?}");
    assert_eq!(link.counters.dropped.load(Ordering::Relaxed), 1);
}

#[test]
fn stalls_come_in_cycles_and_end() {
    let p = Profile {
        stall_every_s: Some(1.0),
        stall_ms: 300,
        ..lan()
    };
    let link = DeviceLink::new(p, 3);
    let now = Instant::now();
    let stalled = (0..100)
        .filter(|k| {
            link.stalled_until(now + Duration::from_millis(k * 10))
                .is_some()
        })
        .count();
    assert!((25..=35).contains(&stalled), "{stalled} of 100 samples");
}
