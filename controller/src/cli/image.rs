//! `petrel image`: import, build, list and delete images, and the import
//! report (what devices will change in the image).

use super::human_bytes;
use crate::client::Client;
use crate::images::Imported;
use anyhow::Result;
use clap::Subcommand;
use petrel_protocol::ImageConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Import an image as `docker load` and skopeo take it: a docker-save
    /// or OCI archive (plain, .gz or .zst), or a directory holding either.
    Import {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        tag: String,
    },
    /// Build a one-layer image from a directory.
    Build {
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        tag: String,
        /// Entrypoint argv, one flag per element.
        #[arg(long = "entrypoint")]
        entrypoint: Vec<String>,
        /// Default command argv, one flag per element.
        #[arg(long = "cmd")]
        cmd: Vec<String>,
        /// KEY=VALUE, repeatable.
        #[arg(long = "env")]
        env: Vec<String>,
        #[arg(long)]
        workdir: Option<String>,
    },
    /// List images.
    List,
    /// Delete an image (NAME:TAG); refused while a release uses it. Its
    /// layers nothing else uses are removed.
    Delete {
        #[arg(value_parser = parse_image_ref)]
        image: (String, String),
    },
}

/// `NAME:TAG`, with an error that says what is missing.
fn parse_image_ref(s: &str) -> Result<(String, String), String> {
    match s.rsplit_once(':') {
        Some((name, tag)) if !name.is_empty() && !tag.is_empty() => {
            Ok((name.to_string(), tag.to_string()))
        }
        _ => Err(format!("{s:?}: write NAME:TAG (see petrel image list)")),
    }
}

pub(super) async fn run(client: &Client, cmd: ImageCmd, json: bool) -> Result<()> {
    let m = match cmd {
        ImageCmd::Import { file, name, tag } => client.import_image(&file, &name, &tag).await?,
        ImageCmd::Build {
            dir,
            name,
            tag,
            entrypoint,
            cmd,
            env,
            workdir,
        } => {
            let config = ImageConfig {
                entrypoint,
                cmd,
                env,
                working_dir: workdir,
                ..Default::default()
            };
            client.build_image(&dir, &name, &tag, config).await?
        }
        ImageCmd::List => {
            let images = client.images().await?;
            if json {
                return super::print_json(&images);
            }
            let mut table =
                crate::table::Table::new(&["IMAGE", "PLATFORM", "LAYERS", "SIZE", "ID"]);
            for m in images {
                let size: u64 = m.layers.iter().map(|l| l.size).sum();
                table.row(vec![
                    format!("{}:{}", m.name, m.tag),
                    m.platform.as_ref().map_or("any".into(), |p| p.to_string()),
                    m.layers.len().to_string(),
                    human_bytes(size),
                    m.id().to_string(),
                ]);
            }
            print!("{}", table.render());
            return Ok(());
        }
        ImageCmd::Delete { image: (name, tag) } => {
            let gc = client.delete_image(&name, &tag).await?;
            let deleted =
                serde_json::json!({ "ok": true, "deleted": format!("{name}:{tag}"), "gc": gc });
            return super::emit(json, &deleted, || {
                format!("image {name}:{tag} deleted; {}\n", super::gc_line(&gc))
            });
        }
    };
    super::emit(json, &m, || import_report(&m))
}

/// What `import`/`build` print: the image, then what devices will change.
pub fn import_report(m: &Imported) -> String {
    let image = &m.image;
    let size: u64 = image.layers.iter().map(|l| l.size).sum();
    let mut out = format!(
        "image {}:{} ({} layers, {}, id {})\n",
        image.name,
        image.tag,
        image.layers.len(),
        human_bytes(size),
        image.id()
    );
    if !m.variants.is_empty() {
        let platforms: Vec<String> = m
            .variants
            .iter()
            .map(|v| v.platform.as_ref().map_or("any".into(), |p| p.to_string()))
            .collect();
        out += &format!("  platforms {}\n", platforms.join(", "));
    }
    let a = &m.audit;
    let list = |count: u64, sample: &[String]| {
        let more = count.saturating_sub(sample.len() as u64);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", sample.join(", "))
    };
    if a.devices_skipped > 0 {
        out += &format!(
            "  {} device nodes will not be created (the runtime provides /dev): {}\n",
            a.devices_skipped,
            list(a.devices_skipped, &a.device_paths)
        );
    }
    if a.setid_stripped > 0 {
        out += &format!(
            "  {} setuid/setgid bits will be stripped unless a service sets x-petrel-allow-setid: true: {}\n",
            a.setid_stripped,
            list(a.setid_stripped, &a.setid_paths)
        );
    }
    if a.hard_links > 0 {
        out += &format!("  {} hard links (kept)\n", a.hard_links);
    }
    out
}
