//! Rootfs assembly scenarios, each run on both backends (overlay as root,
//! copy always): the merged view must be the same.

use super::*;
use tempfile::TempDir;

/// Creates `path` under `root`: a directory if it ends in `/`, a symlink
/// if `spec` starts with `-> `, else a file holding `spec`.
fn put(root: &Path, path: &str, spec: &str) {
    let full = root.join(path);
    fs::create_dir_all(if path.ends_with('/') {
        &full
    } else {
        full.parent().unwrap()
    })
    .unwrap();
    match spec.strip_prefix("-> ") {
        _ if path.ends_with('/') => {}
        Some(target) => symlink(target, &full).unwrap(),
        None => fs::write(&full, spec).unwrap(),
    }
}

/// Builds one layer directory per list of `(path, spec)` under `dir`.
fn layers(dir: &Path, specs: &[&[(&str, &str)]]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let layer = dir.join(format!("layer{i}"));
        fs::create_dir_all(&layer).unwrap();
        spec.iter().for_each(|(path, spec)| put(&layer, path, spec));
        paths.push(layer);
    }
    paths
}

fn read(root: &Path, path: &str) -> Option<String> {
    fs::read_to_string(root.join(path)).ok()
}

/// The backends this machine can test: copy, and overlay as root.
fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Copy];
    if nix::unistd::geteuid().is_root() {
        out.push(Backend::Overlay);
    }
    out
}

/// A rootfs assembled in a temp dir; unmounted and removed on drop.
struct Assembled {
    dir: TempDir,
    root: PathBuf,
}

impl Drop for Assembled {
    fn drop(&mut self) {
        remove(&self.root).expect("remove the rootfs");
    }
}

fn assembled_with(backend: Backend, layer_dirs: &[PathBuf], dir: TempDir) -> Assembled {
    let root = dir.path().join("rootfs");
    let used = assemble_with(layer_dirs, &root, backend).unwrap();
    assert_eq!(
        used, backend,
        "the {backend:?} backend works on this machine"
    );
    Assembled { dir, root }
}

fn assembled(backend: Backend, specs: &[&[(&str, &str)]]) -> Assembled {
    let dir = TempDir::new().unwrap();
    let paths = layers(dir.path(), specs);
    assembled_with(backend, &paths, dir)
}

#[test]
fn upper_layers_override_lower_files_and_keep_modes() {
    backends().into_iter().for_each(upper_layers_override_on);
}

fn upper_layers_override_on(backend: Backend) {
    let dir = TempDir::new().unwrap();
    let lower: &[(&str, &str)] = &[("a", "1"), ("d/x", "x"), ("d/y", "y")];
    let paths = layers(dir.path(), &[lower, &[("a", "2"), ("d/z", "z")]]);
    let set_mode =
        |path: &str, mode| fs::set_permissions(paths[1].join(path), Permissions::from_mode(mode));
    let as_root = nix::unistd::geteuid().is_root();
    if as_root {
        lchown(paths[1].join("d/z"), Some(1000), Some(1000)).unwrap();
    }
    set_mode("d/z", 0o4750).unwrap();
    set_mode("d", 0o510).unwrap();
    let built = assembled_with(backend, &paths, dir);
    let root = &built.root;
    let found = ["a", "d/x", "d/y", "d/z"].map(|p| read(root, p));
    assert_eq!(found, ["2", "x", "y", "z"].map(|s| Some(s.to_string())));
    let mode = |path: &str| fs::metadata(root.join(path)).unwrap().mode() & 0o7777;
    assert_eq!(
        (mode("d/z"), mode("d"), mode("d/x")),
        (0o4750, 0o510, 0o644)
    );
    assert!(!as_root || fs::metadata(root.join("d/z")).unwrap().uid() == 1000);
}

#[test]
fn whiteouts_delete_lower_entries_and_are_not_copied() {
    backends().into_iter().for_each(whiteouts_on);
}

fn whiteouts_on(backend: Backend) {
    let lower: &[(&str, &str)] = &[
        ("a/keep", "k"),
        ("a/gone", "g"),
        ("dir/x/y", "y"),
        ("same", "old"),
    ];
    let upper: &[(&str, &str)] = &[
        ("a/.wh.gone", ""),
        (".wh.dir", ""),
        (".wh.same", ""),
        ("same", "new"),
    ];
    let built = assembled(backend, &[lower, upper]);
    let root = &built.root;
    assert_eq!(read(root, "a/keep").as_deref(), Some("k"));
    assert!(!root.join("a/gone").exists() && !root.join("dir").exists());
    assert_eq!(read(root, "same").as_deref(), Some("new"));
    assert!(!root.join("a/.wh.gone").exists() && !root.join(".wh.dir").exists());
}

#[test]
fn an_opaque_directory_hides_lower_contents_but_keeps_its_own() {
    backends().into_iter().for_each(opaque_dir_on);
}

fn opaque_dir_on(backend: Backend) {
    let lower: &[(&str, &str)] = &[("etc/old", "o"), ("etc/sub/deep", "d"), ("other", "x")];
    let upper: &[(&str, &str)] = &[("etc/.wh..wh..opq", ""), ("etc/new", "n")];
    // A third layer: the opaque directory hides only what lies below it.
    let top: &[(&str, &str)] = &[("etc/top", "t")];
    let built = assembled(backend, &[lower, upper, top]);
    let root = &built.root;
    let names: Vec<_> = read_names(&root.join("etc")).unwrap();
    assert_eq!(names, ["new", "top"]);
    assert_eq!(read(root, "other").as_deref(), Some("x"));
}

#[test]
fn symlinks_are_copied_as_links_and_never_followed() {
    backends().into_iter().for_each(symlinks_on);
}

fn symlinks_on(backend: Backend) {
    let outside = TempDir::new().unwrap();
    let out = outside.path().to_str().unwrap().to_string();
    let lower: &[(&str, &str)] = &[
        ("etc-link", "-> /etc"),
        ("rel", "-> a/f"),
        ("dangling", "-> nowhere"),
    ];
    let esc = format!("-> {out}");
    let upper: &[(&str, &str)] = &[("esc", &esc)];
    let top: &[(&str, &str)] = &[("esc/x", "written"), ("rel", "-> other")];
    let built = assembled(backend, &[lower, upper, top]);
    let root = &built.root;
    assert_eq!(
        fs::read_link(root.join("etc-link")).unwrap(),
        Path::new("/etc")
    );
    assert_eq!(
        fs::read_link(root.join("dangling")).unwrap(),
        Path::new("nowhere")
    );
    assert_eq!(fs::read_link(root.join("rel")).unwrap(), Path::new("other"));
    assert!(fs::symlink_metadata(root.join("esc")).unwrap().is_dir());
    assert_eq!(read(root, "esc/x").as_deref(), Some("written"));
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn writes_to_the_rootfs_never_reach_the_layer() {
    backends().into_iter().for_each(writes_on);
}

fn writes_on(backend: Backend) {
    let built = assembled(backend, &[&[("bin/app", "v1")]]);
    let (dir, root) = (built.dir.path(), &built.root);
    let layer_file = dir.join("layer0/bin/app");
    let ino = |path: &Path| fs::metadata(path).unwrap().ino();
    if backend == Backend::Copy {
        assert_ne!(ino(&layer_file), ino(&root.join("bin/app")));
    }
    fs::write(root.join("bin/app"), "changed").unwrap();
    assert_eq!(read(&dir.join("layer0"), "bin/app").as_deref(), Some("v1"));
}

#[test]
fn an_existing_rootfs_is_kept_and_remove_deletes_it() {
    backends().into_iter().for_each(existing_on);
}

fn existing_on(backend: Backend) {
    let built = assembled(backend, &[&[("a", "1")]]);
    let (dir, root) = (built.dir.path(), &built.root);
    let other = layers(&dir.join("more"), &[&[("a", "2")]]);
    assemble(&other, root).unwrap();
    assert_eq!(read(root, "a").as_deref(), Some("1"));
    remove(root).unwrap();
    assert!(!root.exists());
    remove(root).unwrap();
    assert_eq!(remove_stale(dir).unwrap(), 0);
}

#[test]
fn a_missing_layer_is_an_error_and_leaves_nothing_behind() {
    let dir = TempDir::new().unwrap();
    let dest = dir.path().join("out/rootfs");
    let err = assemble(&[dir.path().join("absent")], &dest).unwrap_err();
    assert!(matches!(err, RootfsError::MissingLayer(_)), "{err}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn an_overlay_rootfs_unmounted_by_a_reboot_is_mounted_again_with_its_writes() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: overlayfs needs root");
        return;
    }
    let built = assembled(Backend::Overlay, &[&[("bin/app", "v1")]]);
    let (dir, root) = (built.dir.path(), &built.root);
    fs::write(root.join("state"), "kept").unwrap();
    nix::mount::umount2(root, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_eq!(read(root, "bin/app"), None, "unmounted, as after a reboot");
    let paths = layers(&dir.join("again"), &[&[("bin/app", "other")]]);
    assert_eq!(assemble(&paths, root).unwrap(), Backend::Overlay);
    assert_eq!(read(root, "bin/app").as_deref(), Some("v1"));
    assert_eq!(read(root, "state").as_deref(), Some("kept"));
}
