//! Field rules on real processes: an application's update lock defers the
//! swap (phase `deferred`, with the holder) until it is released or the
//! operator forces it; a data budget stops an update that would download
//! more than allowed, or a full layer where deltas only are allowed, and
//! leaves the device on its release; the bytes an update cost are reported.

use petrel_protocol::{EventKind, Phase};
use petrel_tests::cli::{petrel, succeeded};
use petrel_tests::*;
use std::time::Duration;

const COMPOSE: &str = "services:\n  app:\n    image: sample-app:TAG\n    command: [\"--state-dir\", \"/data\", \"--interval-ms\", \"100\"]\n    restart: always\n    volumes: [\"jobs:/data\"]\n";

async fn release(
    client: &petrel_controller::client::Client,
    tmp: &std::path::Path,
    v: &str,
) -> anyhow::Result<()> {
    let tag = format!("v{v}");
    sample_image(client, tmp, &tag, v, &[]).await?;
    client
        .create_release("demo", v, &COMPOSE.replace("TAG", &tag))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_update_lock_defers_the_swap_until_released_or_forced() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "lock-1", &ctl.broker_url(), &ctl.url())?;
    let id = std::slice::from_ref(&agent.id);
    for v in ["1", "2", "3"] {
        release(&client, tmp.path(), v).await?;
    }
    client.deploy("demo@1", id).await?;
    wait_converged(&client, &agent.id, "1").await?;
    let v1 = running_app(&agent.data_dir, "1").await?;

    // the application takes its lock: the file in its named volume
    let lock = agent.data_dir.join("volumes/jobs/updates.lock");
    std::fs::write(&lock, "printing order 42\n")?;
    client.deploy("demo@2", id).await?;
    let deferred = wait_phase(&client, &agent.id, Phase::Deferred).await?;
    let holder = deferred.held_by.clone().unwrap_or_default();
    assert!(
        holder.contains("app") && holder.contains("printing order 42"),
        "{holder}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = client.device(&agent.id).await?;
    assert_eq!(
        still.phase,
        Phase::Deferred,
        "the swap did not wait for the lock"
    );
    assert!(
        pid_alive(v1),
        "the running release was touched while deferred"
    );
    let table = succeeded(&petrel(&ctl, &["device", "show", &agent.id]));
    assert!(table.contains("update lock held by app"), "{table}");

    // released: the swap proceeds by itself
    std::fs::remove_file(&lock)?;
    wait_converged(&client, &agent.id, "2").await?;
    let events = client.events(&agent.id).await?;
    let deferrals: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Deferred)
        .collect();
    assert!(
        deferrals
            .iter()
            .any(|e| e.message.contains("printing order 42")),
        "{deferrals:?}"
    );
    assert!(
        deferrals.iter().any(|e| e.message.contains("released")),
        "{deferrals:?}"
    );

    // held again: the operator forces the next release through it
    std::fs::write(&lock, "calibrating")?;
    client.deploy("demo@3", id).await?;
    wait_phase(&client, &agent.id, Phase::Deferred).await?;
    let out = petrel(
        &ctl,
        &["deploy", "demo@3", "--device", &agent.id, "--force"],
    );
    succeeded(&out);
    wait_converged(&client, &agent.id, "3").await?;
    let events = client.events(&agent.id).await?;
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::Deferred && e.message.contains("overridden")),
        "no override event"
    );
    assert!(
        lock.exists(),
        "the agent must never remove the application's lock"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_budget_stops_what_it_cannot_pay_for_and_reports_what_updates_cost(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "budget-1", &ctl.broker_url(), &ctl.url())?;
    let id = agent.id.as_str();
    for v in ["1", "2"] {
        release(&client, tmp.path(), v).await?;
    }
    // a new device holds no base: deltas only means nothing can come
    let out = petrel(
        &ctl,
        &[
            "deploy",
            "demo@1",
            "--device",
            id,
            "--full-fallback",
            "deny",
        ],
    );
    succeeded(&out);
    let failed = wait_phase(&client, id, Phase::Failed).await?;
    let why = failed.last_error.unwrap_or_default();
    assert!(why.contains("full_fallback is \"deny\""), "{why}");
    assert_eq!(failed.current, None);

    succeeded(&petrel(&ctl, &["deploy", "demo@1", "--device", id]));
    let first = wait_converged(&client, id, "1").await?;
    let full_cost = first.update_bytes.expect("the update's bytes are reported");
    assert!(full_cost > 0);
    let v1 = running_app(&agent.data_dir, "1").await?;

    // too small a budget for even the delta: refused, v1 keeps running
    let out = petrel(
        &ctl,
        &["deploy", "demo@2", "--device", id, "--max-bytes", "64"],
    );
    succeeded(&out);
    let failed = wait_phase(&client, id, Phase::Failed).await?;
    let why = failed.last_error.unwrap_or_default();
    assert!(why.contains("data budget of 64 bytes"), "{why}");
    assert!(
        pid_alive(v1),
        "a refused update touched the running release"
    );

    // deltas only, enough bytes: the delta comes, at a fraction of the full cost
    let budget = (full_cost / 2).to_string();
    let out = petrel(
        &ctl,
        &[
            "deploy",
            "demo@2",
            "--device",
            id,
            "--max-bytes",
            &budget,
            "--full-fallback",
            "deny",
        ],
    );
    succeeded(&out);
    let done = wait_converged(&client, id, "2").await?;
    let cost = done.update_bytes.expect("reported");
    assert!(
        cost > 0 && cost < full_cost / 2,
        "delta update cost {cost} of {full_cost}"
    );
    eprintln!("first update (full blobs): {full_cost} bytes; delta-only update: {cost} bytes");
    let table = succeeded(&petrel(&ctl, &["devices"]));
    assert!(table.contains(" used"), "{table}");
    Ok(())
}
