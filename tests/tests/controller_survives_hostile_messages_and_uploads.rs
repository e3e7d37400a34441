//! One message or one upload must not take the control plane down: a
//! 1.5 MB retained message on a device's `reported` topic is dropped and
//! counted while the controller's session stays up and the fleet view
//! keeps updating; a release whose desired state could never be published
//! is refused at creation; an upload over the configured cap gets 413 and
//! leaves nothing behind.

use petrel_protocol::topics::{topic, Channel};
use petrel_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn oversized_messages_releases_and_uploads_are_refused_and_the_fleet_keeps_working(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::with_args(&tmp.path().join("ctl"), &["--max-upload-bytes", "40000000"])?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "big-1", &ctl.broker_url(), &ctl.url())?;
    run_demo_v1(&client, tmp.path(), &agent).await?;

    // a 1.5 MB retained message where the device reports
    let reported = topic(&agent.id, Channel::Reported);
    publish_raw(ctl.mqtt_port, &reported, vec![b'{'; 1536 * 1024]).await?;
    let since = petrel_controller::now_ms();
    wait_fresh_report(&client, &agent.id, "1", since).await?;
    let log = ctl.log();
    assert!(log.contains("dropped an oversized device message"), "{log}");
    assert!(
        !log.contains("broker connection lost"),
        "the session dropped:\n{log}"
    );

    // a release too large to ever publish
    let mut compose = "services:\n".to_string();
    for i in 0..2500 {
        compose += &format!("  s{i}:\n    image: sample-app:v1\n");
    }
    let err = client
        .create_release("huge", "1", &compose)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("message limit") && text.contains("2500 services"),
        "{text}"
    );

    // an upload over the cap
    let err = client.upload_layer(noise(45_000_000, 9)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("413") && text.contains("--max-upload-bytes"),
        "{text}"
    );
    // a client that does not ask first is refused by the server itself:
    // on its declared length, and on what it actually sends
    use std::io::{Read, Write};
    for (declared, body) in [(Some(45_000_000u64), 0usize), (None, 41_000_000)] {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", ctl.http_port))?;
        let length = match declared {
            Some(n) => format!("Content-Length: {n}\r\n"),
            None => "Transfer-Encoding: chunked\r\n".into(),
        };
        let auth = format!("Authorization: Bearer {}\r\n", ctl.admin_token());
        write!(
            tcp,
            "POST /v1/layers HTTP/1.1\r\nHost: x\r\n{auth}{length}\r\n"
        )?;
        if declared.is_none() {
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..body / chunk.len() + 1 {
                if write!(tcp, "{:x}\r\n", chunk.len()).is_err()
                    || tcp.write_all(&chunk).is_err()
                    || tcp.write_all(b"\r\n").is_err()
                {
                    break; // the server stopped reading: fine
                }
            }
        }
        let mut response = String::new();
        let _ = tcp.read_to_string(&mut response);
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "{declared:?}: {response:.200}"
        );
    }
    let spool = std::fs::read_dir(ctl.dir.join("data/tmp"))?.count();
    assert_eq!(spool, 0, "the partial upload is gone");
    Ok(())
}
