//! Getting an assembled rootfs into the engine as an image, once.
//!
//! No registry is reachable from a device, so the rootfs is streamed to the
//! engine as a `docker load` archive (see [`super::archive`]). Images are
//! content-addressed: the tag is `petrel/rootfs:<diff_id>` and the expected
//! image id is the sha256 of the deterministic config, so a rootfs whose tag
//! already names that id is not loaded again, whatever its path.

use super::archive::{self, LayerSum};
use super::error::{engine_failed, is_not_found, message};
use crate::runtime::RuntimeError;
use bollard::query_parameters::ImportImageOptionsBuilder;
use bollard::Docker;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Repository of every image Petrel loads.
pub const IMAGE_REPOSITORY: &str = "petrel/rootfs";
/// Chunk size of the archive stream sent to the engine.
const CHUNK: usize = 256 * 1024;

/// An image in the engine made from a rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// `petrel/rootfs:<diff_id hex>`.
    pub tag: String,
    /// Engine image id, `sha256:<hex of the config>`.
    pub id: String,
    /// Whether this call loaded it (false: it was already there).
    pub loaded: bool,
}

/// Makes sure the image of `rootfs` exists in the engine. Callers serialise
/// calls (the engine would happily load the same archive twice).
pub(super) async fn ensure(docker: &Docker, rootfs: &Path) -> Result<LoadedImage, RuntimeError> {
    let layer = measure(rootfs).await?;
    let tag = format!("{IMAGE_REPOSITORY}:{}", layer.diff_id);
    let id = format!(
        "sha256:{}",
        archive::sha256_hex(&archive::image_config(
            std::slice::from_ref(&layer),
            &archive::ImageMeta::default(),
        ))
    );
    if current_id(docker, &tag).await?.as_deref() == Some(id.as_str()) {
        return Ok(LoadedImage {
            tag,
            id,
            loaded: false,
        });
    }
    tracing::info!(rootfs = %rootfs.display(), %tag, size = layer.size, "loading image");
    let (tree, archive_tag) = (rootfs.to_path_buf(), tag.clone());
    let write: ArchiveWriter = Box::new(move |out| {
        archive::write_save_archive(out, &tree, &layer, &archive_tag).map(drop)
    });
    load(docker, rootfs, &tag, write).await?;
    loaded_as(docker, rootfs, tag, id).await
}

/// After a load: the image `tag` names must be `id`; `what` names the
/// loaded tree in the error.
pub(super) async fn loaded_as(
    docker: &Docker,
    what: &Path,
    tag: String,
    id: String,
) -> Result<LoadedImage, RuntimeError> {
    match current_id(docker, &tag).await? {
        Some(found) if found == id => Ok(LoadedImage {
            tag,
            id,
            loaded: true,
        }),
        found => Err(load_error(
            what,
            format!("engine loaded {tag} as {found:?}, expected {id}"),
        )),
    }
}

/// Size and digest of the rootfs's layer, computed off the async threads.
async fn measure(rootfs: &Path) -> Result<LayerSum, RuntimeError> {
    let path = rootfs.to_path_buf();
    let joined = tokio::task::spawn_blocking(move || archive::layer_sum(&path)).await;
    joined
        .map_err(io::Error::other)
        .and_then(|sum| sum)
        .map_err(|source| RuntimeError::Io {
            op: "archive rootfs",
            path: rootfs.to_path_buf(),
            source,
        })
}

/// Id of the image `tag` names, `None` if there is none.
pub(super) async fn current_id(docker: &Docker, tag: &str) -> Result<Option<String>, RuntimeError> {
    match docker.inspect_image(tag).await {
        Ok(image) => Ok(image.id),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(engine_failed("inspect image", tag)(e)),
    }
}

/// Writes a docker-save archive (blocking); runs on a blocking thread.
pub(super) type ArchiveWriter = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// Streams the archive `write` produces to the engine's image load;
/// `rootfs` names what is loaded in errors.
pub(super) async fn load(
    docker: &Docker,
    rootfs: &Path,
    tag: &str,
    write: ArchiveWriter,
) -> Result<(), RuntimeError> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let producer = tokio::task::spawn_blocking(move || produce(tx, write));
    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let options = ImportImageOptionsBuilder::new().quiet(true).build();
    let mut progress = docker.import_image_stream(options, body, None);
    let mut engine_error = None;
    while let Some(item) = progress.next().await {
        if let Err(e) = item {
            engine_error = Some(message(&e));
            break;
        }
    }
    // Dropping the request ends the body, so a blocked producer returns.
    drop(progress);
    let produced = producer.await.map_err(io::Error::other).and_then(|r| r);
    let refused = |e| load_error(rootfs, format!("engine refused {tag}: {e}"));
    match (produced, engine_error) {
        (Ok(()), None) => Ok(()),
        (Ok(()), Some(engine)) => Err(refused(engine)),
        // The engine gave up first: its reason beats our broken pipe.
        (Err(e), Some(engine)) if e.kind() == io::ErrorKind::BrokenPipe => Err(refused(engine)),
        (Err(e), _) => Err(load_error(rootfs, e.to_string())),
    }
}

/// Writes the archive into the channel; a failure is sent as the last item
/// so the engine sees a broken body rather than a short, valid-looking one.
fn produce(tx: mpsc::Sender<io::Result<Bytes>>, write: ArchiveWriter) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(CHUNK, ChannelWriter(tx.clone()));
    let result = write(&mut out).and_then(|()| out.flush());
    if let Err(e) = &result {
        // The receiver may be gone already; then there is no one to tell.
        let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
    }
    result
}

pub(super) fn load_error(rootfs: &Path, reason: String) -> RuntimeError {
    RuntimeError::Io {
        op: "load image from rootfs",
        path: PathBuf::from(rootfs),
        source: io::Error::other(reason),
    }
}

/// Blocking writer feeding the request body stream.
struct ChannelWriter(mpsc::Sender<io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let chunk = Bytes::copy_from_slice(buf);
        self.0.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the engine stopped reading the image",
            )
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
