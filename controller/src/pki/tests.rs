use super::*;

fn names() -> ServerNames {
    ServerNames {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
    }
}

#[test]
fn init_writes_keys_owner_only_and_refuses_to_overwrite_a_fleet() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &names()).unwrap();
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let err = init(dir.path(), &names()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn revoking_a_device_revokes_every_serial_issued_to_it_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &names()).unwrap();
    let pki = Pki::load(dir.path()).unwrap();
    let csr = petrel_tls::new_key_and_csr("pi-1").unwrap();
    let a = pki.provision("pi-1", &csr.csr_pem).unwrap();
    let b = pki.provision("pi-1", &csr.csr_pem).unwrap();
    let other = pki.provision("pi-2", &csr.csr_pem).unwrap();
    let watch = pki.revoked();
    assert_eq!(pki.revoke("pi-1").unwrap().len(), 2);
    assert!(watch.has_changed().unwrap());
    let again = Pki::load(dir.path()).unwrap();
    assert!(again.is_revoked(&a.serial) && again.is_revoked(&b.serial));
    assert!(!again.is_revoked(&other.serial));
    let crl = std::fs::read_to_string(dir.path().join("crl.pem")).unwrap();
    assert!(crl.contains("BEGIN X509 CRL"));
    assert!(matches!(
        pki.revoke("nobody"),
        Err(PkiError::NotProvisioned(_))
    ));
}

#[test]
fn the_controller_name_and_hostile_ids_cannot_be_provisioned() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &names()).unwrap();
    let pki = Pki::load(dir.path()).unwrap();
    let csr = petrel_tls::new_key_and_csr("x").unwrap();
    for bad in [CONTROLLER_IDENTITY, "a/b", "+", "#", ""] {
        assert!(
            matches!(pki.provision(bad, &csr.csr_pem), Err(PkiError::BadId(..))),
            "{bad}"
        );
    }
}
