use super::*;
use petrel_protocol::{ImageConfig, ImageManifest, LayerDescriptor, SCHEMA};

fn layer_tar(body: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    builder.append_data(&mut h, "f", body).unwrap();
    builder.into_inner().unwrap()
}

fn image(name: &str, layers: Vec<LayerDescriptor>) -> ImageManifest {
    ImageManifest {
        schema: SCHEMA,
        name: name.into(),
        tag: "1".into(),
        layers,
        config: ImageConfig::default(),
        platform: None,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    blobs: BlobStore,
    deltas: std::path::PathBuf,
    paths: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let blobs = BlobStore::open(dir.path().join("blobs")).unwrap();
    let (deltas, paths) = (dir.path().join("deltas"), dir.path().join("paths"));
    std::fs::create_dir_all(&deltas).unwrap();
    std::fs::create_dir_all(&paths).unwrap();
    Fixture {
        _dir: dir,
        store,
        blobs,
        deltas,
        paths,
    }
}

impl Fixture {
    fn dirs(&self) -> CacheDirs<'_> {
        CacheDirs {
            deltas: &self.deltas,
            paths: &self.paths,
        }
    }
}

#[test]
fn gc_removes_only_what_no_image_references() {
    let f = fixture();
    let kept = f.blobs.put_layer_tar(&layer_tar(b"kept")[..]).unwrap();
    let gone = f.blobs.put_layer_tar(&layer_tar(b"gone")[..]).unwrap();
    f.store.put_image(&image("a", vec![kept.clone()])).unwrap();
    f.store.put_image(&image("b", vec![gone.clone()])).unwrap();
    let pair = |a: &LayerDescriptor, b: &LayerDescriptor| {
        format!("{}-{}.v1.patch", a.diff_id.hex(), b.diff_id.hex())
    };
    std::fs::write(f.deltas.join(pair(&gone, &kept)), b"patch").unwrap();
    std::fs::write(f.deltas.join(pair(&kept, &kept)), b"patch").unwrap();
    std::fs::write(f.paths.join(format!("{}.json", gone.diff_id.hex())), b"[]").unwrap();
    std::fs::write(f.deltas.join("README"), b"not a cache file").unwrap();

    assert!(f.store.delete_image("b", "1").unwrap());
    let doomed = HashSet::new();
    let report = collect(&f.store, &f.blobs, f.dirs(), Duration::ZERO, &doomed).unwrap();
    assert_eq!((report.blobs, report.deltas, report.path_lists), (1, 1, 1));
    assert!(report.blob_bytes > 0);
    assert!(f.blobs.has(&kept.digest) && !f.blobs.has(&gone.digest));
    assert!(f.deltas.join(pair(&kept, &kept)).exists());
    assert!(f.deltas.join("README").exists());
    assert!(f.store.layer(&gone.diff_id).unwrap().is_none());
    assert!(f.store.layer(&kept.diff_id).unwrap().is_some());
}

#[test]
fn gc_keeps_a_fresh_upload_whose_image_is_not_registered_yet() {
    let f = fixture();
    let fresh = f
        .blobs
        .put_layer_tar(&layer_tar(b"just uploaded")[..])
        .unwrap();
    let hour = Duration::from_secs(3600);
    let none = HashSet::new();
    let report = collect(&f.store, &f.blobs, f.dirs(), hour, &none).unwrap();
    assert_eq!(report.blobs, 0);
    assert!(f.blobs.has(&fresh.digest));
    // the layers of an image just deleted go whatever their age
    let doomed = HashSet::from([fresh.digest.clone()]);
    let report = collect(&f.store, &f.blobs, f.dirs(), hour, &doomed).unwrap();
    assert_eq!(report.blobs, 1);
}

#[test]
fn a_forgotten_device_that_returns_gets_a_higher_generation() {
    let f = fixture();
    for _ in 0..3 {
        f.store
            .set_desired("d-1", None, Default::default(), 0)
            .unwrap();
    }
    assert!(f.store.forget_device("d-1").unwrap());
    assert!(f.store.desired("d-1").unwrap().is_none());
    assert!(!f.store.device_ids().unwrap().contains(&"d-1".to_string()));
    assert_eq!(
        f.store
            .set_desired("d-1", None, Default::default(), 0)
            .unwrap()
            .generation,
        4
    );
    assert!(!f.store.forget_device("never-seen").unwrap());
}
