//! `petrel rollout ...` and `petrel device label`.

use crate::client::Client;
use crate::http::rollouts::{CreateRollout, LabelChange};
use crate::rollouts::rollback::RevertOutcome;
use crate::rollouts::RolloutRecord;
use anyhow::Result;
use clap::Subcommand;
use petrel_protocol::rollout::{Breach, DeviceState, Phase};
use std::time::Duration;

#[derive(Subcommand)]
pub enum RolloutCmd {
    /// Roll a release out to the devices a selector picks, in waves.
    Create {
        /// NAME@VERSION
        release: String,
        /// `key=value,key!=value,key` over labels, `id` and `platform`
        /// (empty: every device).
        #[arg(long = "select", default_value = "")]
        selector: String,
        /// A saved group: its selector (and `--select`, if given, too).
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        id: Option<String>,
        /// Cumulative waves: percentages or counts.
        #[arg(long, default_value = "1%,10%,50%,100%")]
        waves: String,
        /// A device of the canary wave, before all others (repeatable).
        #[arg(long = "canary")]
        canary: Vec<String>,
        /// Devices started per minute at most.
        #[arg(long)]
        per_minute: Option<u32>,
        /// The rate grows by this percent each minute (100: doubles).
        #[arg(long, default_value_t = 0)]
        rate_growth: u16,
        /// Share of a wave that must succeed before the next (percent).
        #[arg(long, default_value_t = 95)]
        success: u8,
        /// Seconds a finished wave soaks before the next starts.
        #[arg(long, default_value_t = 60)]
        soak: u64,
        /// Failed share (percent) of finished devices that breaches.
        #[arg(long, default_value_t = 10)]
        max_failed: u8,
        /// ... and at least this many failures.
        #[arg(long, default_value_t = 1)]
        min_failed: u32,
        /// What a breach does.
        #[arg(long, value_enum, default_value = "pause")]
        on_breach: BreachArg,
        /// Seconds after which an unfinished device counts as stuck.
        #[arg(long, default_value_t = 3600)]
        device_timeout: u64,
        /// Times a failed device is sent the release again.
        #[arg(long, default_value_t = 0)]
        retries: u32,
    },
    List,
    Status {
        id: String,
        /// Follow it until it completes or aborts.
        #[arg(long)]
        watch: bool,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Stop it and send every device that moved back to what it ran.
    Abort {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum GroupCmd {
    /// Save a selector under a name, with an optional maintenance window
    /// (devices it selects swap only inside it): create or replace.
    Create {
        name: String,
        #[arg(long = "select")]
        selector: String,
        /// `mon-fri 02:00-04:00 Europe/Berlin`, `daily 22:00-02:00 UTC`.
        #[arg(long)]
        window: Option<String>,
        /// `30m`, `2h`: swap despite an application's update lock once a
        /// device has deferred this long.
        #[arg(long)]
        lock_override_after: Option<String>,
        /// Most bytes one update may download per device (`50MB`).
        #[arg(long)]
        max_bytes: Option<String>,
        /// `deny`: no full layer download when no delta serves.
        #[arg(long)]
        full_fallback: Option<String>,
    },
    List,
    Delete {
        name: String,
    },
}

/// A group's update rules in words.
fn rules(g: &crate::http::groups::Group) -> String {
    let mut out = vec![format!(
        "swaps: {}",
        g.window
            .as_ref()
            .map_or("any time".into(), |w| w.to_string())
    )];
    if let Some(s) = g.lock_override_after_s {
        out.push(format!("update locks overridden after {s} s"));
    }
    if let Some(b) = g.budget {
        out.push(format!("data: {b}"));
    }
    out.join(", ")
}

pub(super) async fn group(client: &Client, cmd: GroupCmd, json: bool) -> Result<()> {
    use crate::http::groups::GroupSpec;
    match cmd {
        GroupCmd::Create {
            name,
            selector,
            window,
            lock_override_after,
            max_bytes,
            full_fallback,
        } => {
            let g = client
                .put_group(&GroupSpec {
                    name,
                    selector,
                    window,
                    lock_override_after,
                    max_bytes,
                    full_fallback,
                })
                .await?;
            if json {
                return super::print_json(&g);
            }
            println!("group {}: {} ({})", g.name, g.selector, rules(&g));
        }
        GroupCmd::List => {
            let groups = client.groups().await?;
            if json {
                return super::print_json(&groups);
            }
            for g in &groups {
                println!("{}  {}  {}", g.name, g.selector, rules(g));
            }
        }
        GroupCmd::Delete { name } => {
            client.delete_group(&name).await?;
            let deleted = serde_json::json!({ "ok": true, "deleted": name });
            super::emit(json, &deleted, || format!("group {name} deleted\n"))?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BreachArg {
    Pause,
    Abort,
}

pub(super) async fn run(client: &Client, cmd: RolloutCmd, json: bool) -> Result<()> {
    match cmd {
        RolloutCmd::Create {
            release,
            selector,
            group,
            id,
            waves,
            canary,
            per_minute,
            rate_growth,
            success,
            soak,
            max_failed,
            min_failed,
            on_breach,
            device_timeout,
            retries,
        } => {
            let req = CreateRollout {
                id,
                release,
                selector,
                group,
                waves,
                canary,
                per_minute,
                rate_growth_percent: rate_growth,
                success_percent: success,
                soak_s: soak,
                max_failed_percent: max_failed,
                min_failed,
                on_breach: Some(match on_breach {
                    BreachArg::Pause => Breach::Pause,
                    BreachArg::Abort => Breach::Abort,
                }),
                device_timeout_s: device_timeout,
                retries,
            };
            show(&client.create_rollout(&req).await?, json)
        }
        RolloutCmd::List => {
            let all = client.rollouts().await?;
            super::emit(json, &all, || {
                all.iter().map(|r| format!("{}\n", summary(r))).collect()
            })
        }
        RolloutCmd::Status { id, watch } => {
            let mut last = String::new();
            loop {
                let rec = client.rollout(&id).await?;
                let text = match json {
                    true => serde_json::to_string_pretty(&rec)?,
                    false => status_text(&rec),
                };
                if text != last {
                    println!("{text}");
                    last = text;
                }
                let done = matches!(rec.rollout.phase, Phase::Completed | Phase::Aborted { .. });
                if !watch || done {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        RolloutCmd::Pause { id } => show(&client.rollout_command(&id, "pause", None).await?, json),
        RolloutCmd::Resume { id } => {
            show(&client.rollout_command(&id, "resume", None).await?, json)
        }
        RolloutCmd::Abort { id, reason } => {
            show(&client.rollout_command(&id, "abort", reason).await?, json)
        }
    }
}

fn show(rec: &RolloutRecord, json: bool) -> Result<()> {
    super::emit(json, rec, || format!("{}\n", status_text(rec)))
}

pub(super) fn phase_text(p: &Phase) -> String {
    match p {
        Phase::Active { wave } => format!("wave {} running", wave + 1),
        Phase::Soaking { wave, .. } => format!("wave {} soaking", wave + 1),
        Phase::Paused { wave, reason } => format!("paused at wave {}: {reason}", wave + 1),
        Phase::Aborted { reason } => format!("aborted: {reason}"),
        Phase::Completed => "completed".into(),
    }
}

fn summary(rec: &RolloutRecord) -> String {
    let r = &rec.rollout;
    let done: u32 = r.tallies.iter().map(|t| t.succeeded).sum();
    format!(
        "{}  {}  {}  {}/{} succeeded",
        r.id,
        r.release,
        phase_text(&r.phase),
        done,
        r.tallies.iter().map(|t| t.total()).sum::<u32>()
    )
}

/// The status block: phase, one line per wave, stuck/failed devices,
/// rollback progress, recent notes.
pub fn status_text(rec: &RolloutRecord) -> String {
    let r = &rec.rollout;
    let mut out = format!(
        "rollout {} of {} to {:?}: {}\n",
        r.id,
        r.release,
        r.selector.to_string(),
        phase_text(&r.phase)
    );
    for (i, t) in r.tallies.iter().enumerate() {
        out += &format!(
            "  wave {}: {} queued, {} started, {} succeeded, {} failed\n",
            i + 1,
            t.queued,
            t.started,
            t.succeeded,
            t.failed
        );
    }
    for (d, m) in &r.members {
        match &m.state {
            DeviceState::Failed { reason } => out += &format!("  {d}: failed: {reason}\n"),
            DeviceState::Stuck { phase } => out += &format!("  {d}: stuck ({phase})\n"),
            _ => {}
        }
    }
    if let Some(rb) = &rec.rollback {
        let state = match rb.settled() {
            true => "done",
            false => "under way",
        };
        out += &format!(
            "  rollback {state}: {} sent back to their previous release, {} back, {} failed\n",
            rb.sent, rb.back, rb.failed
        );
    }
    for (d, outcome) in &rec.reverts {
        if let RevertOutcome::Failed { reason } = outcome {
            out += &format!("  {d}: rollback failed: {reason}\n");
        }
    }
    for n in rec.notes.iter().rev().take(5).rev() {
        out += &format!("  [{}] {}\n", crate::rfc3339(n.at_ms / 1000), n.text);
    }
    out
}

/// `petrel device label ID k=v ... [--remove k]`.
pub(super) async fn label(
    client: &Client,
    id: &str,
    pairs: &[String],
    remove: Vec<String>,
    json: bool,
) -> Result<()> {
    let mut change = LabelChange {
        remove,
        ..Default::default()
    };
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            anyhow::bail!("label {p:?} is not key=value");
        };
        change.set.insert(k.to_string(), v.to_string());
    }
    let labels = client.label_device(id, &change).await?;
    if json {
        return super::print_json(&serde_json::json!({ "device": id, "labels": labels }));
    }
    let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{id}: {}", text.join(","));
    Ok(())
}
