//! The security verbs: `ca init` and `broker mosquitto-config` (local, on
//! the controller's machine, before or beside `serve`), `device provision`
//! and `device revoke`, `token create|list|delete`.

use crate::auth::Role;
use crate::client::Client;
use crate::client::ProvisionOptions;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CaCmd {
    /// Create the fleet CA, the controller's certificate (for the names
    /// and addresses given) and its signing key, in the controller's data
    /// dir. Run once, before the first `serve`.
    Init {
        /// The controller's data directory.
        #[arg(long)]
        data: PathBuf,
        /// A DNS name devices use for the controller (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
        /// An IP address devices use for the controller (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create an API token; it is printed once (the controller keeps its hash).
    Create {
        #[arg(long, value_enum)]
        role: Role,
        /// Who or what holds it.
        #[arg(long, default_value = "unnamed")]
        name: String,
    },
    /// List tokens (ids, names, roles; never the tokens).
    List,
    /// Delete a token by id: it stops working at once.
    Delete { id: String },
}

#[derive(Subcommand)]
pub enum BrokerCmd {
    /// Print a Mosquitto configuration enforcing Petrel's per-device
    /// authorization with the fleet's certificates; with --out, also write
    /// it and its ACL file there.
    MosquittoConfig {
        /// The controller's data directory (its `pki/`).
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 8883)]
        port: u16,
        /// Write mosquitto.conf and petrel.acl into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub(super) fn ca_init(cmd: CaCmd) -> Result<()> {
    let CaCmd::Init { data, names, ips } = cmd;
    let mut server = crate::pki::default_names();
    if !names.is_empty() || !ips.is_empty() {
        server.dns = names;
        server.ips = ips;
    }
    crate::pki::init(&data.join("pki"), &server)?;
    let keys = crate::keys::Keyring::load_or_create(&data.join("keys"))?;
    println!(
        "fleet CA and controller certificate in {} (names {:?}, addresses {:?})",
        data.join("pki").display(),
        server.dns,
        server.ips
    );
    println!(
        "signing key {} (id {})",
        keys.public().to_hex(),
        keys.public().id()
    );
    Ok(())
}

pub(super) fn broker(cmd: BrokerCmd) -> Result<()> {
    use crate::broker::mosquitto::{acl, config, MosquittoSetup};
    let BrokerCmd::MosquittoConfig { data, port, out } = cmd;
    let pki_dir = std::path::absolute(data.join("pki"))?;
    if !pki_dir.join("ca.pem").exists() {
        bail!(
            "no fleet CA in {}: run `petrel ca init --data {}` first",
            pki_dir.display(),
            data.display()
        );
    }
    let acl_file = match &out {
        Some(dir) => std::path::absolute(dir.join("petrel.acl"))?,
        None => PathBuf::from("/etc/mosquitto/petrel.acl"),
    };
    let conf = config(&MosquittoSetup {
        pki_dir: &pki_dir,
        acl_file: &acl_file,
        port,
        max_message: crate::broker::MAX_PAYLOAD,
    });
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
            petrel_tls::write_public(&dir.join("mosquitto.conf"), &conf)?;
            petrel_tls::write_public(&acl_file, &acl())?;
            println!(
                "{conf}\n# wrote {} and {}",
                dir.join("mosquitto.conf").display(),
                acl_file.display()
            );
        }
        None => println!("{conf}\n# --- {} ---\n{}", acl_file.display(), acl()),
    }
    Ok(())
}

pub(super) async fn token(client: &Client, cmd: TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Create { role, name } => {
            let created = client.create_token(role, &name).await?;
            eprintln!(
                "token {} ({}, role {}); it is shown only now:",
                created.record.id, created.record.name, created.record.role
            );
            println!("{}", created.token);
        }
        TokenCmd::List => {
            for t in client.tokens().await? {
                println!("{}  {:<8}  {}", t.id, t.role.to_string(), t.name);
            }
        }
        TokenCmd::Delete { id } => {
            client.delete_token(&id).await?;
            println!("token {id} deleted");
        }
    }
    Ok(())
}

/// `petrel device provision`: a key made here, a certificate from the
/// controller, and a ready agent.toml.
pub(super) async fn provision(client: &Client, id: &str, opts: ProvisionOptions) -> Result<()> {
    let bundle = client.provision_device(id, &opts).await?;
    let out = &opts.out;
    println!(
        "device {id} provisioned in {} (certificate serial {}):",
        out.display(),
        bundle.serial
    );
    for f in ["agent.toml", "device.key (0600)", "device.pem", "ca.pem"] {
        println!("  {f}");
    }
    println!(
        "copy the directory to the device and run: petrel-agent run --config {}",
        out.join("agent.toml").display()
    );
    Ok(())
}
