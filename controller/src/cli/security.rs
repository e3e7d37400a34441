//! The security verbs: `ca init` and `broker mosquitto-config` (local, on
//! the controller's machine, before or beside `serve`), `device provision`
//! and `device revoke`, `token create|list|delete`.

use crate::auth::Role;
use crate::client::Client;
use crate::client::ProvisionOptions;
use anyhow::Result;
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
    /// Issue a certificate for an external Mosquitto broker and write a
    /// configuration enforcing Petrel's per-device authorization
    /// (mosquitto.conf, petrel.acl, broker.pem, broker.key) into --out.
    MosquittoConfig {
        /// The controller's data directory (its `pki/`).
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 8883)]
        port: u16,
        /// Directory for the configuration, ACL and broker key.
        #[arg(long)]
        out: PathBuf,
        /// A DNS name devices use for the broker (repeatable; default:
        /// this machine's names).
        #[arg(long = "name")]
        names: Vec<String>,
        /// An IP address devices use for the broker (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Print the public key agents pin (`controller_key` in agent.toml).
    Show,
    /// Make a new signing key and re-publish every desired state signed by
    /// it. Endorsed by the current key, or, with --root-key, by an offline
    /// root key (the recovery when the controller's key may be stolen:
    /// devices pinning the root then refuse every older controller key).
    Rotate {
        /// The root key file (`petrel key root-init`); it is read here and
        /// never sent to the controller.
        #[arg(long)]
        root_key: Option<PathBuf>,
    },
    /// Make an offline root key (local): keep the file off the controller;
    /// give its public key to devices (`device provision --root-key`).
    RootInit {
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) async fn key(client: &Client, cmd: KeyCmd, json: bool) -> Result<()> {
    match cmd {
        KeyCmd::Show => {
            let k = client.signing_key().await?;
            super::emit(json, &k, || format!("{}  (id {})\n", k.public_key, k.id))?;
        }
        KeyCmd::Rotate { root_key: None } => {
            let k = client.rotate_key().await?;
            if json {
                return super::print_json(&k);
            }
            println!("signing key rotated: {}  (id {}); agents trust it through the old key's endorsement", k.public_key, k.id);
        }
        KeyCmd::Rotate {
            root_key: Some(file),
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading the root key {}: {e}", file.display()))?;
            let root = petrel_protocol::SigningKey::from_hex(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let next = client.next_key().await?;
            let public = petrel_protocol::PublicKey::from_hex(&next.public_key)?;
            let k = client.install_endorsed_key(&root.endorse(&public)).await?;
            if json {
                return super::print_json(&k);
            }
            println!("signing key replaced: {}  (id {}), endorsed by root key {}; devices pinning the root refuse every older controller key", k.public_key, k.id, root.public().id());
        }
        KeyCmd::RootInit { out } => root_init(&out, json)?,
    }
    Ok(())
}

/// `petrel key root-init --out FILE`.
pub(super) fn root_init(out: &std::path::Path, json: bool) -> Result<()> {
    if out.exists() {
        anyhow::bail!("{} exists; a root key is made once", out.display());
    }
    let root = petrel_protocol::SigningKey::from_seed(rand::random());
    petrel_tls::write_secret(out, &format!("{}\n", root.to_hex()))?;
    if json {
        let made = serde_json::json!({ "ok": true, "root_key_file": out, "public_root_key": root.public().to_hex() });
        return super::print_json(&made);
    }
    println!(
        "root key written to {} (0600): keep it offline, off the controller",
        out.display()
    );
    println!(
        "public root key (root_key in agent.toml; petrel device provision --root-key): {}",
        root.public().to_hex()
    );
    Ok(())
}

pub(super) fn ca_init(cmd: CaCmd, json: bool) -> Result<()> {
    let CaCmd::Init { data, names, ips } = cmd;
    let server = server_names(names, ips);
    crate::pki::init(&data.join("pki"), &server)?;
    let keys = crate::keys::Keyring::load_or_create(&data.join("keys"))?;
    if json {
        let made = serde_json::json!({
            "ok": true,
            "pki": data.join("pki"),
            "names": server.dns,
            "addresses": server.ips,
            "signing_key": keys.public().to_hex(),
            "signing_key_id": keys.public().id().to_string(),
        });
        return super::print_json(&made);
    }
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

pub(super) fn broker(cmd: BrokerCmd, json: bool) -> Result<()> {
    use crate::broker::mosquitto::{acl, config, MosquittoSetup};
    let BrokerCmd::MosquittoConfig {
        data,
        port,
        out,
        names,
        ips,
    } = cmd;
    let pki = crate::pki::Pki::load(&data.join("pki"))?;
    let pki_dir = std::path::absolute(data.join("pki"))?;
    let out = std::path::absolute(&out)?;
    let (cert, key) = (out.join("broker.pem"), out.join("broker.key"));
    let (issued, key_pem) = pki.issue_server("petrel:broker", &server_names(names, ips))?;
    petrel_tls::write_secret(&key, &key_pem)?;
    petrel_tls::write_public(&cert, &issued.cert_pem)?;
    let owner = give_to_mosquitto(&key);
    let acl_file = out.join("petrel.acl");
    let conf = config(&MosquittoSetup {
        pki_dir: &pki_dir,
        cert: &cert,
        key: &key,
        acl_file: &acl_file,
        port,
        max_message: crate::broker::MAX_PAYLOAD,
    });
    petrel_tls::write_public(&out.join("mosquitto.conf"), &conf)?;
    petrel_tls::write_public(&acl_file, &acl())?;
    if json {
        let files =
            ["mosquitto.conf", "petrel.acl", "broker.pem", "broker.key"].map(|f| out.join(f));
        let made = serde_json::json!({ "ok": true, "files": files, "key": owner, "crl": pki_dir.join("crl.pem") });
        return super::print_json(&made);
    }
    println!("{conf}");
    println!(
        "# wrote mosquitto.conf, petrel.acl, broker.pem and broker.key ({owner}) in {}",
        out.display()
    );
    println!(
        "# after `petrel device revoke`, restart Mosquitto so it reads the new {}",
        pki_dir.join("crl.pem").display()
    );
    Ok(())
}

fn server_names(names: Vec<String>, ips: Vec<IpAddr>) -> petrel_tls::ServerNames {
    let mut server = crate::pki::default_names();
    if !names.is_empty() || !ips.is_empty() {
        server.dns = names;
        server.ips = ips;
    }
    server
}

/// Mosquitto drops to its own user before reading its key: when run as
/// root where that user exists, hand the key to it.
fn give_to_mosquitto(key: &std::path::Path) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "mosquitto").then(|| (f[2].parse().ok(), f[3].parse().ok()))
    });
    match ids {
        Some((Some(uid), Some(gid))) => match std::os::unix::fs::chown(key, Some(uid), Some(gid)) {
            Ok(()) => "owned by the mosquitto user, mode 0600".into(),
            Err(e) => format!("mode 0600; could not give it to the mosquitto user: {e}"),
        },
        _ => "mode 0600".into(),
    }
}

pub(super) async fn token(client: &Client, cmd: TokenCmd, json: bool) -> Result<()> {
    match cmd {
        TokenCmd::Create { role, name } => {
            let created = client.create_token(role, &name).await?;
            if json {
                return super::print_json(&created);
            }
            eprintln!(
                "token {} ({}, role {}); it is shown only now:",
                created.record.id, created.record.name, created.record.role
            );
            println!("{}", created.token);
        }
        TokenCmd::List => {
            let tokens = client.tokens().await?;
            super::emit(json, &tokens, || {
                let line = |t: &crate::auth::tokens::TokenRecord| {
                    format!("{}  {:<8}  {}\n", t.id, t.role.to_string(), t.name)
                };
                tokens.iter().map(line).collect()
            })?;
        }
        TokenCmd::Delete { id } => {
            client.delete_token(&id).await?;
            let deleted = serde_json::json!({ "ok": true, "deleted": id });
            super::emit(json, &deleted, || format!("token {id} deleted\n"))?;
        }
    }
    Ok(())
}

/// `petrel device provision`: a key made here, a certificate from the
/// controller, and a ready agent.toml.
pub(super) async fn provision(
    client: &Client,
    id: &str,
    opts: ProvisionOptions,
    json: bool,
) -> Result<()> {
    let bundle = client.provision_device(id, &opts).await?;
    let out = &opts.out;
    if json {
        let files = ["agent.toml", "device.key", "device.pem", "ca.pem"].map(|f| out.join(f));
        let made = serde_json::json!({ "ok": true, "device": id, "serial": bundle.serial, "files": files });
        return super::print_json(&made);
    }
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
