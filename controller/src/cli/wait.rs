//! `petrel deploy --wait`: follows the deployed devices until each has
//! converged, failed or been superseded, drawing their progress.

use crate::client::Client;
use crate::http::Deployed;
use anyhow::{bail, Result};
use std::time::Duration;

/// Devices shown one line each up to this many; a summary bar beyond.
const WAIT_LINES: usize = 20;

/// `deploy --wait`: polls the fleet view until every deployed device has
/// converged, failed or been superseded; redraws its lines in place on a
/// terminal, prints changes only otherwise; with `show` false (`--json`)
/// it draws nothing and only the verdict speaks.
pub(super) async fn wait_deployed(
    client: &Client,
    deployed: &[Deployed],
    timeout: Duration,
    show: bool,
) -> Result<()> {
    use crate::watch::{line, outcome, summary, Outcome, Rates};
    use std::io::{IsTerminal, Write};
    let start = std::time::Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut rates = Rates::default();
    let (mut drawn, mut last_text) = (0usize, Vec::<String>::new());
    loop {
        let views = match client.devices().await {
            Ok(v) => v,
            Err(e) if start.elapsed() < timeout => {
                eprintln!("waiting: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let now_s = start.elapsed().as_secs_f64();
        let mut outcomes = Vec::new();
        let mut lines = Vec::new();
        for d in deployed {
            let Some(view) = views.iter().find(|v| v.id == d.device) else {
                outcomes.push(Outcome::Pending);
                lines.push(format!("{}  not connected yet", d.device));
                continue;
            };
            let o = outcome(view, d.generation);
            let rate = rates.update(&view.id, view.progress.bytes_done, now_s);
            lines.push(line(view, &o, rate));
            outcomes.push(o);
        }
        if deployed.len() > WAIT_LINES {
            lines = vec![summary(&outcomes)];
        }
        let mut out = std::io::stdout().lock();
        if !show {
            // --json: the caller prints the result
        } else if tty {
            // Back to the top of what was drawn last time, clearing it.
            for _ in 0..drawn {
                write!(out, "\x1b[1A\x1b[2K")?;
            }
            lines.iter().try_for_each(|l| writeln!(out, "{l}"))?;
            drawn = lines.len();
        } else {
            let changed = |l: &&String| !last_text.contains(l) && !l.contains(" of ");
            lines
                .iter()
                .filter(changed)
                .try_for_each(|l| writeln!(out, "{l}"))?;
            last_text = lines.clone();
        }
        out.flush()?;
        drop(out);
        if outcomes.iter().all(Outcome::done) {
            return wait_verdict(deployed, &outcomes, show);
        }
        if start.elapsed() >= timeout {
            let left: Vec<&str> = deployed
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| !o.done())
                .map(|(d, _)| d.device.as_str())
                .collect();
            bail!(
                "timed out after {} s; not done: {}",
                timeout.as_secs(),
                left.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ok if every device converged; else an error naming each that did not.
fn wait_verdict(
    deployed: &[Deployed],
    outcomes: &[crate::watch::Outcome],
    show: bool,
) -> Result<()> {
    use crate::watch::Outcome;
    let bad: Vec<String> = deployed
        .iter()
        .zip(outcomes)
        .filter_map(|(d, o)| match o {
            Outcome::Failed(why) => Some(format!("{}: {why}", d.device)),
            Outcome::Superseded(g) => Some(format!("{}: superseded by generation {g}", d.device)),
            _ => None,
        })
        .collect();
    if bad.is_empty() {
        if show {
            println!("all {} devices run the release", deployed.len());
        }
        return Ok(());
    }
    bail!(
        "{} of {} devices did not converge:\n  {}",
        bad.len(),
        deployed.len(),
        bad.join("\n  ")
    )
}
