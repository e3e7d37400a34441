use super::*;

fn admit(audit: &mut LayerAudit, path: &str, kind: EntryKind) -> Result<Treatment, String> {
    audit.admit(Path::new(path), &kind, None)
}

fn link(
    audit: &mut LayerAudit,
    path: &str,
    kind: EntryKind,
    to: &str,
) -> Result<Treatment, String> {
    audit.admit(Path::new(path), &kind, Some(Path::new(to)))
}

#[test]
fn device_nodes_are_skipped_and_counted_with_their_paths() {
    let mut audit = LayerAudit::new(false);
    assert_eq!(
        admit(&mut audit, "./", EntryKind::Dir),
        Ok(Treatment::Ignore)
    );
    assert_eq!(
        admit(&mut audit, "./dev/null", EntryKind::CharDevice),
        Ok(Treatment::SkipDevice)
    );
    assert_eq!(
        admit(&mut audit, "dev/sda", EntryKind::BlockDevice),
        Ok(Treatment::SkipDevice)
    );
    let summary = audit.summary();
    assert_eq!(summary.devices_skipped, 2);
    assert_eq!(summary.device_paths, ["dev/null", "dev/sda"]);
    assert!(!summary.is_clean());
}

#[test]
fn setid_bits_are_stripped_unless_allowed() {
    let mut audit = LayerAudit::new(false);
    assert_eq!(audit.mode(Path::new("bin/su"), 0o104755), 0o755);
    assert_eq!(audit.mode(Path::new("bin/ls"), 0o755), 0o755);
    assert_eq!(audit.summary().setid_stripped, 1);
    assert_eq!(audit.summary().setid_paths, ["bin/su"]);
    let mut allowed = LayerAudit::new(true);
    assert_eq!(allowed.mode(Path::new("bin/su"), 0o4755), 0o4755);
    assert_eq!(allowed.summary().setid_stripped, 0);
}

#[test]
fn escaping_paths_and_links_are_refused_with_the_reason() {
    let mut audit = LayerAudit::new(false);
    assert!(admit(&mut audit, "../etc/passwd", EntryKind::File)
        .unwrap_err()
        .contains(".."));
    assert!(admit(&mut audit, "/etc/passwd", EntryKind::File)
        .unwrap_err()
        .contains("absolute"));
    let err = link(&mut audit, "a/l", EntryKind::Symlink, "../../x").unwrap_err();
    assert!(err.contains("escapes the layer root"), "{err}");
    assert!(link(&mut audit, "a/abs", EntryKind::Symlink, "/usr/bin").is_ok());
    let err = admit(&mut audit, "s", EntryKind::Other("GNUSparse".into())).unwrap_err();
    assert!(err.contains("GNUSparse"), "{err}");
}

#[test]
fn nothing_is_placed_below_a_symlink_or_a_file() {
    let mut audit = LayerAudit::new(false);
    link(&mut audit, "etc", EntryKind::Symlink, "/tmp").unwrap();
    let err = admit(&mut audit, "etc/passwd", EntryKind::File).unwrap_err();
    assert!(err.contains("parent"), "{err}");
    admit(&mut audit, "f", EntryKind::File).unwrap();
    assert!(admit(&mut audit, "f/g", EntryKind::File).is_err());
}

#[test]
fn a_directory_is_replaced_only_by_a_directory() {
    let mut audit = LayerAudit::new(false);
    admit(&mut audit, "usr/lib/x", EntryKind::File).unwrap();
    assert!(admit(&mut audit, "usr/lib", EntryKind::Dir).is_ok());
    let err = admit(&mut audit, "usr/lib", EntryKind::File).unwrap_err();
    assert!(err.contains("replace a directory"), "{err}");
    // a file may become a directory or another file
    admit(&mut audit, "opt", EntryKind::File).unwrap();
    assert!(admit(&mut audit, "opt", EntryKind::Dir).is_ok());
}

#[test]
fn hard_links_must_name_an_earlier_file_of_the_layer() {
    let mut audit = LayerAudit::new(false);
    admit(&mut audit, "bin/a", EntryKind::File).unwrap();
    assert!(link(&mut audit, "bin/b", EntryKind::HardLink, "bin/a").is_ok());
    assert!(link(&mut audit, "bin/c", EntryKind::HardLink, "bin/b").is_ok());
    let err = link(&mut audit, "bin/d", EntryKind::HardLink, "bin/missing").unwrap_err();
    assert!(err.contains("bin/missing"), "{err}");
    assert!(
        link(&mut audit, "x", EntryKind::HardLink, "bin").is_err(),
        "a directory"
    );
    assert!(link(&mut audit, "y", EntryKind::HardLink, "../etc/shadow").is_err());
    assert_eq!(audit.summary().hard_links, 2);
}

#[test]
fn summaries_add_up_and_keep_a_bounded_sample() {
    let mut total = AuditSummary::default();
    for i in 0..3 {
        let mut audit = LayerAudit::new(false);
        for j in 0..5 {
            admit(&mut audit, &format!("dev/n{i}{j}"), EntryKind::CharDevice).unwrap();
        }
        total.absorb(audit.summary());
    }
    assert_eq!(total.devices_skipped, 15);
    assert_eq!(total.device_paths.len(), SAMPLE_PATHS);
}

#[test]
fn tar_typeflags_map_to_kinds() {
    assert_eq!(EntryKind::from_typeflag(b'0'), EntryKind::File);
    assert_eq!(EntryKind::from_typeflag(0), EntryKind::File);
    assert_eq!(EntryKind::from_typeflag(b'3'), EntryKind::CharDevice);
    assert_eq!(EntryKind::from_typeflag(b'5'), EntryKind::Dir);
    assert!(matches!(EntryKind::from_typeflag(b'S'), EntryKind::Other(n) if n.contains("sparse")));
}
