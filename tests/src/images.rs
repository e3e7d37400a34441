//! Test images: incompressible payloads and multi-layer sample-app images
//! assembled from uploaded layers.

use anyhow::Result;
use petrel_controller::client::Client;
use petrel_protocol::{ImageConfig, LayerDescriptor};
use std::path::Path;

/// Deterministic incompressible bytes (xorshift), so a compressed layer
/// is as large as its payload.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn tar_of(dir: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    petrel_controller::images::tar_dir(dir, &mut out)?;
    Ok(out)
}

/// Image `name:tag` of two layers: `data/blob.bin` holding `data`, under
/// the sample app `version`; and release `demo@version` running it.
pub async fn two_layer_release(
    client: &Client,
    tmp: &Path,
    name: &str,
    tag: &str,
    version: &str,
    data: &[u8],
) -> Result<Vec<LayerDescriptor>> {
    let data_dir = tmp.join(format!("data-{name}-{tag}"));
    std::fs::create_dir_all(data_dir.join("data"))?;
    std::fs::write(data_dir.join("data/blob.bin"), data)?;
    let app_dir = tmp.join(format!("app-{name}-{tag}"));
    petrel_simulator::sample::app_dir(
        &petrel_simulator::sample::sample_app_binary()?,
        version,
        &app_dir,
    )?;
    let layers = vec![
        client.upload_layer(tar_of(&data_dir)?).await?,
        client.upload_layer(tar_of(&app_dir)?).await?,
    ];
    let config = ImageConfig {
        entrypoint: vec!["/app/sample-app".into()],
        working_dir: Some("/app".into()),
        ..Default::default()
    };
    client.put_image(name, tag, layers.clone(), config).await?;
    let compose = format!(
        "services:\n  app:\n    image: {name}:{tag}\n    command: [\"--interval-ms\", \"100\"]\n"
    );
    client.create_release("demo", version, &compose).await?;
    Ok(layers)
}
