use super::*;
use std::fs;

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1::/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
";

const GROUP: &str = "\
root:x:0:
wheel:x:10:root,app
app:x:1000:
audio:x:29:app
";

fn image(passwd: &str, group: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    fs::write(dir.path().join("etc/passwd"), passwd).unwrap();
    fs::write(dir.path().join("etc/group"), group).unwrap();
    dir
}

fn creds(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
    Credentials {
        uid,
        gid,
        groups: groups.to_vec(),
    }
}

#[test]
fn a_name_resolves_in_the_images_passwd_with_its_groups() {
    let dir = image(PASSWD, GROUP);
    let got = resolve(dir.path(), Some("app")).unwrap();
    assert_eq!(got, creds(1000, 1000, &[1000, 10, 29]));
}

#[test]
fn a_uid_listed_in_passwd_takes_its_name_and_groups() {
    let dir = image(PASSWD, GROUP);
    let got = resolve(dir.path(), Some("1000")).unwrap();
    assert_eq!(got, creds(1000, 1000, &[1000, 10, 29]));
}

#[test]
fn a_uid_not_in_passwd_runs_with_gid_0() {
    let dir = image(PASSWD, GROUP);
    let got = resolve(dir.path(), Some("4242")).unwrap();
    assert_eq!(got, creds(4242, 0, &[0]));
}

#[test]
fn uid_and_gid_are_taken_as_they_are_even_without_any_files() {
    let dir = tempfile::tempdir().unwrap();
    let got = resolve(dir.path(), Some("1000:2000")).unwrap();
    assert_eq!(got, creds(1000, 2000, &[2000]));
}

#[test]
fn an_explicit_group_replaces_the_supplementary_groups() {
    let dir = image(PASSWD, GROUP);
    let got = resolve(dir.path(), Some("app:audio")).unwrap();
    assert_eq!(got, creds(1000, 29, &[29]));
}

#[test]
fn no_user_is_root_with_roots_groups() {
    let dir = image(PASSWD, GROUP);
    let got = resolve(dir.path(), None).unwrap();
    assert_eq!(got, creds(0, 0, &[0, 10]));
    assert_eq!(resolve(dir.path(), Some("")).unwrap(), got);
}

#[test]
fn no_user_is_plain_root_when_the_image_files_are_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("etc/passwd")).unwrap();
    let got = resolve(dir.path(), None).unwrap();
    assert_eq!(got, creds(0, 0, &[0]));
}

#[test]
fn an_unknown_name_is_an_error_naming_the_user_and_the_file() {
    let dir = image(PASSWD, GROUP);
    let err = resolve(dir.path(), Some("nobody")).unwrap_err().to_string();
    assert!(err.contains("\"nobody\""), "{err}");
    assert!(err.contains("etc/passwd"), "{err}");
    let err = resolve(dir.path(), Some("app:video"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no group \"video\""), "{err}");
    assert!(err.contains("etc/group"), "{err}");
}

#[test]
fn a_name_is_never_looked_up_on_the_host() {
    // `root` exists on every host; the image has no passwd at all.
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        resolve(dir.path(), Some("root")),
        Err(UserError::NoSuchUser { .. })
    ));
}

#[test]
fn malformed_user_strings_are_refused() {
    let dir = image(PASSWD, GROUP);
    for bad in [":", "app:", ":app", "a:b:c", "4294967295", "a b", "app\n"] {
        assert!(
            matches!(
                resolve(dir.path(), Some(bad)),
                Err(UserError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn a_hostile_passwd_is_skipped_line_by_line_without_panicking() {
    let hostile = "\
:x:0:0::/:/bin/sh
evil
evil:x
evil:x:-1:0
evil:x:99999999999:0
app:x:1000:notanumber
\u{0}\u{ff}:::::::::::
app:x:1001:1001:\u{1F600}:relative/home:/bin/sh
";
    let group = "wheel:x:oops:app\n:x:5:app\nstaff:x:50:,,app,,\n";
    let dir = image(hostile, group);
    let got = resolve(dir.path(), Some("app")).unwrap();
    assert_eq!(got, creds(1001, 1001, &[1001, 50]));
    assert!(resolve(dir.path(), Some("evil")).is_err());
}

#[test]
fn a_passwd_that_is_not_valid_utf8_still_resolves() {
    let dir = image("", GROUP);
    let mut bytes = b"\xff\xfe:x:1:1::/:/bin/sh\n".to_vec();
    bytes.extend_from_slice(PASSWD.as_bytes());
    fs::write(dir.path().join("etc/passwd"), bytes).unwrap();
    let got = resolve(dir.path(), Some("app")).unwrap();
    assert_eq!(got.uid, 1000);
}
