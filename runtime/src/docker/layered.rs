//! An instance's image loaded into the engine with its real layers, tagged
//! `petrel/<name>:<tag>` with its creation date, so a release shares every
//! unchanged layer with the one before (and with the engine's cache), and
//! a small update loads only its new layers.
//!
//! Each layer is archived from the device's unpacked, validated layer tree
//! (device nodes never created, setuid/setgid stripped as the policy says),
//! deterministically: the same tree always gives the same diff_id, so the
//! engine recognises a layer chain it already holds. Such layers go into
//! the save archive as empty files: the engine's loader does not open the
//! file of a chain it has (moby `tarexport/load.go`). Should it ever need
//! one, the load fails and is retried with every layer written in full.
//!
//! A layer's sum (diff_id and size) is computed once per process: layer
//! trees never change once installed.

use super::archive::{self, ArchiveLayer, ImageMeta, LayerSum, MANAGED_LABEL};
use super::error::engine_failed;
use super::image::{current_id, load, loaded_as, ArchiveWriter, LoadedImage};
use super::DockerRuntime;
use crate::runtime::{ImageLayers, RuntimeError};
use bollard::query_parameters::ListImagesOptionsBuilder;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;

/// Label naming the image (`name:tag`) a layered image was loaded from.
pub(super) const IMAGE_LABEL: &str = "io.petrel.image";
/// Repository prefix of layered images.
const REPOSITORY_PREFIX: &str = "petrel/";
/// Creation time used when an image does not state one.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Layer sums already computed, by layer tree.
pub(super) type SumCache = std::sync::Mutex<HashMap<PathBuf, LayerSum>>;

/// `petrel/<name>:<tag>` in the engine's grammar: lowercase repository
/// components separated by single `-`, a tag not starting with `-` or `.`.
pub fn docker_tag(name: &str, tag: &str) -> String {
    let mut repo = String::new();
    for c in name.chars().map(|c| c.to_ascii_lowercase()) {
        match c.is_ascii_alphanumeric() {
            true => repo.push(c),
            false if !repo.is_empty() && !repo.ends_with('-') => repo.push('-'),
            false => {}
        }
    }
    let repo = match repo.trim_end_matches('-') {
        "" => "image",
        r => r,
    };
    let tag: String = tag.chars().take(127).collect();
    let tag = match tag.starts_with(['-', '.']) {
        true => format!("_{tag}"),
        false => tag,
    };
    format!("{REPOSITORY_PREFIX}{repo}:{tag}")
}

impl DockerRuntime {
    /// Makes sure `image` is in the engine with its layers and returns its
    /// tag. Callers hold the image lock.
    pub(super) async fn ensure_layers(
        &self,
        image: &ImageLayers,
    ) -> Result<LoadedImage, RuntimeError> {
        let sums = self.layer_sums(&image.layers).await?;
        let meta = ImageMeta {
            created: image.created.clone().unwrap_or_else(|| EPOCH.into()),
            labels: [
                (MANAGED_LABEL.to_string(), "true".to_string()),
                (
                    IMAGE_LABEL.to_string(),
                    format!("{}:{}", image.name, image.tag),
                ),
            ]
            .into(),
            process: image.config.clone(),
        };
        let config = archive::image_config(&sums, &meta);
        let id = format!("sha256:{}", archive::sha256_hex(&config));
        let tag = docker_tag(&image.name, &image.tag);
        let what = image.layers.first().map_or(Path::new(""), |p| p.as_path());
        if current_id(&self.docker, &tag).await?.as_deref() == Some(id.as_str()) {
            return Ok(LoadedImage {
                tag,
                id,
                loaded: false,
            });
        }
        let held = self.held_prefix(&sums).await;
        tracing::info!(%tag, layers = sums.len(), held, "loading image layers");
        let mut result = self.load_layers(image, &sums, &config, &tag, held).await;
        if result.is_err() && held > 0 {
            tracing::warn!(%tag, error = ?result, "loading without the held layers failed; loading them all");
            result = self.load_layers(image, &sums, &config, &tag, 0).await;
        }
        result?;
        loaded_as(&self.docker, what, tag, id).await
    }

    async fn load_layers(
        &self,
        image: &ImageLayers,
        sums: &[LayerSum],
        config: &[u8],
        tag: &str,
        held: usize,
    ) -> Result<(), RuntimeError> {
        let (trees, sums, config, archive_tag) = (
            image.layers.clone(),
            sums.to_vec(),
            config.to_vec(),
            tag.to_string(),
        );
        let write: ArchiveWriter = Box::new(move |out| {
            let layers: Vec<ArchiveLayer> = trees
                .iter()
                .zip(sums)
                .enumerate()
                .map(|(i, (tree, sum))| ArchiveLayer {
                    tree,
                    sum,
                    include: i >= held,
                })
                .collect();
            archive::write_archive(out, &layers, &config, &archive_tag).map(drop)
        });
        let what = image.layers.first().cloned().unwrap_or_default();
        load(&self.docker, &what, tag, write).await
    }

    /// Each layer tree's sum, computed off the async threads once.
    async fn layer_sums(&self, trees: &[PathBuf]) -> Result<Vec<LayerSum>, RuntimeError> {
        let mut out = Vec::with_capacity(trees.len());
        for tree in trees {
            let cached = self
                .sums
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(tree)
                .cloned();
            let sum = match cached {
                Some(sum) => sum,
                None => {
                    let path = tree.clone();
                    let joined =
                        tokio::task::spawn_blocking(move || archive::layer_sum(&path)).await;
                    let sum = joined
                        .map_err(io::Error::other)
                        .and_then(|sum| sum)
                        .map_err(|source| RuntimeError::Io {
                            op: "archive layer",
                            path: tree.clone(),
                            source,
                        })?;
                    let mut cache = self.sums.lock().unwrap_or_else(PoisonError::into_inner);
                    cache.insert(tree.clone(), sum.clone());
                    sum
                }
            };
            out.push(sum);
        }
        Ok(out)
    }

    /// How many of `sums` (from the base) form a layer chain the engine
    /// already holds in one of Petrel's images; 0 when unsure.
    async fn held_prefix(&self, sums: &[LayerSum]) -> usize {
        let Ok(images) = self.managed_images().await else {
            return 0;
        };
        let ours: Vec<String> = sums
            .iter()
            .map(|s| format!("sha256:{}", s.diff_id))
            .collect();
        let mut best = 0;
        for image in images {
            let Ok(inspect) = self.docker.inspect_image(&image.id).await else {
                continue;
            };
            let layers = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
            let common = ours.iter().zip(&layers).take_while(|(a, b)| a == b).count();
            best = best.max(common);
        }
        best
    }

    /// Every image Petrel loaded (labelled managed).
    async fn managed_images(&self) -> Result<Vec<bollard::models::ImageSummary>, RuntimeError> {
        let filters = HashMap::from([("label", vec![format!("{MANAGED_LABEL}=true")])]);
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        self.docker
            .list_images(Some(options))
            .await
            .map_err(engine_failed("list images", REPOSITORY_PREFIX))
    }

    /// Removes Petrel's images (layered or assembled) that are not the
    /// image of one of `keep` and that no container uses (the engine
    /// keeps those); returns the removed tags.
    pub async fn prune_unneeded(&self, keep: &[ImageLayers]) -> Result<Vec<String>, RuntimeError> {
        let keep: Vec<String> = keep.iter().map(|i| docker_tag(&i.name, &i.tag)).collect();
        self.remove_managed_images(|tag| !keep.iter().any(|k| k == tag))
            .await
    }

    /// Removes the managed images whose tag `doomed` accepts, unless used.
    pub(super) async fn remove_managed_images(
        &self,
        doomed: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, RuntimeError> {
        use super::error::{is_conflict, is_not_found};
        use bollard::query_parameters::RemoveImageOptions;
        let _loading = self.locks.images.lock().await;
        let images = self.managed_images().await?;
        let tags = images.into_iter().flat_map(|image| image.repo_tags);
        let mut removed = Vec::new();
        for tag in tags.filter(|t| t.starts_with(REPOSITORY_PREFIX) && doomed(t)) {
            match self
                .docker
                .remove_image(&tag, None::<RemoveImageOptions>, None)
                .await
            {
                Ok(_) => removed.push(tag),
                Err(e) if is_conflict(&e) || is_not_found(&e) => {}
                Err(e) => return Err(engine_failed("remove image", &tag)(e)),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::docker_tag;

    #[test]
    fn image_names_become_engine_tags() {
        assert_eq!(docker_tag("sample-app", "v2"), "petrel/sample-app:v2");
        assert_eq!(docker_tag("My_App..X", "1.0"), "petrel/my-app-x:1.0");
        assert_eq!(docker_tag("__", "-rc"), "petrel/image:_-rc");
    }
}
