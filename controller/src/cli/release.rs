//! `petrel release`: define releases from compose files, list, show and
//! delete them.

use super::{parse_release_ref, split_release_ref};
use crate::client::Client;
use anyhow::{Context, Result};
use clap::Subcommand;
use petrel_protocol::ReleaseManifest;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ReleaseCmd {
    /// Create a release from a compose file.
    Create {
        name: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        compose: PathBuf,
    },
    /// List releases.
    List,
    /// Show a release (NAME@VERSION): its services and their images.
    Show {
        #[arg(value_parser = parse_release_ref)]
        release: String,
    },
    /// Delete a release (NAME@VERSION); refused while a device is asked to
    /// run it or runs it.
    Delete {
        #[arg(value_parser = parse_release_ref)]
        release: String,
    },
}

pub(super) async fn run(client: &Client, cmd: ReleaseCmd, json: bool) -> Result<()> {
    match cmd {
        ReleaseCmd::Create {
            name,
            version,
            compose,
        } => {
            let text = std::fs::read_to_string(&compose)
                .with_context(|| format!("reading {}", compose.display()))?;
            let created = client.create_release(&name, &version, &text).await?;
            for w in &created.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                return super::print_json(&created);
            }
            let r = created.release;
            println!(
                "release {}@{} created ({} services)",
                r.name,
                r.version,
                r.services.len()
            );
        }
        ReleaseCmd::List => {
            let releases = client.releases().await?;
            if json {
                return super::print_json(&releases);
            }
            let mut table = crate::table::Table::new(&["RELEASE", "SERVICES", "IMAGES"]);
            for r in &releases {
                let names: Vec<&str> = r.services.keys().map(String::as_str).collect();
                table.row(vec![r.reference().to_string(), names.join(", "), images(r)]);
            }
            print!("{}", table.render());
        }
        ReleaseCmd::Show { release } => {
            let (name, version) = split_release_ref(&release);
            let r = client.release(name, version).await?;
            super::emit(json, &r, || show(&r))?;
        }
        ReleaseCmd::Delete { release } => {
            let (name, version) = split_release_ref(&release);
            let gc = client.delete_release(name, version).await?;
            let deleted = serde_json::json!({ "ok": true, "deleted": release, "gc": gc });
            super::emit(json, &deleted, || {
                format!("release {release} deleted; {}\n", super::gc_line(&gc))
            })?;
        }
    }
    Ok(())
}

/// The distinct images of a release, `name:tag`, sorted.
fn images(r: &ReleaseManifest) -> String {
    let mut all: Vec<String> = r
        .services
        .values()
        .map(|s| format!("{}:{}", s.image.name, s.image.tag))
        .collect();
    all.sort();
    all.dedup();
    all.join(", ")
}

/// `release show`: one block per service.
fn show(r: &ReleaseManifest) -> String {
    let mut out = format!("release {}\n", r.reference());
    for (name, s) in &r.services {
        let size: u64 = s.image.layers.iter().map(|l| l.size).sum();
        out += &format!(
            "  service {name}\n    image    {}:{} ({} layers, {})\n    command  {}\n",
            s.image.name,
            s.image.tag,
            s.image.layers.len(),
            super::human_bytes(size),
            s.argv().join(" ")
        );
        if !s.ports.is_empty() {
            out += &format!("    ports    {}\n", s.ports.join(", "));
        }
        if !s.volumes.is_empty() {
            out += &format!("    volumes  {}\n", s.volumes.join(", "));
        }
        if let Some(h) = &s.healthcheck {
            out += &format!("    health   {}\n", h.test.join(" "));
        }
    }
    out
}
