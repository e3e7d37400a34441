//! The delta cache: once per pair, unknown layers, hopeless pairs.

use super::*;

fn layer_tar(body: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "data.bin", body).expect("append");
    b.into_inner().expect("tar")
}

fn setup(dir: &Path) -> (DeltaCache, Digest, Digest) {
    let store = Store::open(&dir.join("db")).expect("store");
    let blobs = Arc::new(BlobStore::open(dir.join("blobs")).expect("blobs"));
    let old: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut new = old.clone();
    new[50_000..50_100].fill(7);
    let mut layers = Vec::new();
    for body in [&old, &new] {
        layers.push(blobs.put_layer_tar(&layer_tar(body)[..]).expect("put"));
    }
    let image = petrel_protocol::ImageManifest {
        schema: petrel_protocol::SCHEMA,
        name: "x".into(),
        tag: "1".into(),
        layers: layers.clone(),
        config: Default::default(),
        platform: None,
    };
    store.put_image(&image).expect("image");
    let cache =
        DeltaCache::new(dir.join("deltas"), dir.join("files"), blobs, store).expect("cache");
    (cache, layers[0].diff_id.clone(), layers[1].diff_id.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_for_a_pair_generate_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, from, to) = setup(dir.path());
    let gets = (0..8).map(|_| {
        let (c, f, t) = (cache.clone(), from.clone(), to.clone());
        tokio::spawn(async move { c.get(&f, &t).await })
    });
    let mut digests = Vec::new();
    for g in gets {
        let delta = g.await.expect("join").expect("get").expect("a delta");
        assert!(
            delta.size < 10_000,
            "small change, small patch: {}",
            delta.size
        );
        digests.push(delta.digest);
    }
    assert_eq!(cache.generations(), 1);
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    // served from disk afterwards, still once
    cache.get(&from, &to).await.expect("get").expect("delta");
    assert_eq!(cache.generations(), 1);
}

#[tokio::test]
async fn an_unknown_layer_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, from, _) = setup(dir.path());
    let unknown = Digest::of(b"nope");
    let err = cache.get(&from, &unknown).await.expect_err("unknown");
    assert!(err.to_string().contains(&unknown.to_string()));
}
