use super::*;
use crate::codec::{decode_desired_trusted, DecodeError, Limits, Trust};
use crate::manifest::tests::sample_release;

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

fn desired(generation: u64, expires_at_ms: Option<u64>) -> Desired {
    Desired {
        schema: SCHEMA,
        device_id: "d1".into(),
        generation,
        release: Some(sample_release("1")),
        issued_at_ms: 1,
        expires_at_ms,
        window: None,
        lock_override_after_s: None,
        budget: None,
    }
}

fn check(env: &Envelope, keys: &[PublicKey], now_ms: u64) -> Result<Vec<PublicKey>, DecodeError> {
    check_retired(env, keys, &[], now_ms).map(|l| l.keys)
}

fn check_retired(
    env: &Envelope,
    keys: &[PublicKey],
    retired: &[String],
    now_ms: u64,
) -> Result<Learned, DecodeError> {
    check_rooted(env, keys, &[], retired, now_ms)
}

fn check_rooted(
    env: &Envelope,
    keys: &[PublicKey],
    roots: &[String],
    retired: &[String],
    now_ms: u64,
) -> Result<Learned, DecodeError> {
    let bytes = crate::encode(env);
    let trust = Trust::Keys {
        keys,
        roots,
        retired,
        now_ms,
    };
    decode_desired_trusted(&bytes, "d1", Limits::default(), trust).map(|a| a.learned)
}

#[test]
fn a_desired_state_signed_by_the_pinned_key_is_accepted() {
    let k = key(1);
    let env = k.sign_desired(&desired(3, Some(100)), &[]);
    assert_eq!(check(&env, &[k.public()], 50), Ok(vec![]));
    // keys round-trip through hex
    assert_eq!(
        PublicKey::from_hex(&k.public().to_hex()).unwrap(),
        k.public()
    );
    assert_eq!(
        SigningKey::from_hex(&k.to_hex()).unwrap().public(),
        k.public()
    );
}

#[test]
fn unsigned_tampered_foreign_and_expired_states_are_refused_naming_why() {
    let k = key(1);
    let trusted = [k.public()];
    let unsigned = Envelope::wrap(&desired(3, Some(100)));
    let e = check(&unsigned, &trusted, 50).unwrap_err();
    assert_eq!(e, DecodeError::Signature(SignatureError::Unsigned));
    assert!(e.to_string().contains("unsigned"), "{e}");

    let mut tampered = k.sign_desired(&desired(3, Some(100)), &[]);
    tampered.payload = tampered
        .payload
        .replace("\"generation\":3", "\"generation\":999999");
    let e = check(&tampered, &trusted, 50).unwrap_err();
    assert!(
        matches!(e, DecodeError::Signature(SignatureError::BadSignature(_))),
        "{e}"
    );

    let foreign = key(9).sign_desired(&desired(3, Some(100)), &[]);
    let e = check(&foreign, &trusted, 50).unwrap_err();
    assert!(e.to_string().contains("does not trust"), "{e}");

    let expired = k.sign_desired(&desired(3, Some(100)), &[]);
    let e = check(&expired, &trusted, 100).unwrap_err();
    assert!(matches!(e, DecodeError::Expired { .. }), "{e}");
    let forever = k.sign_desired(&desired(3, None), &[]);
    assert_eq!(
        check(&forever, &trusted, 1).unwrap_err(),
        DecodeError::NoExpiry
    );
    // in insecure mode an unsigned one passes
    let bytes = crate::encode(&unsigned);
    assert!(decode_desired_trusted(&bytes, "d1", Limits::default(), Trust::Unsigned).is_ok());
}

#[test]
fn a_rotated_key_is_trusted_through_its_endorsement_chain_only() {
    let (old, mid, new) = (key(1), key(2), key(3));
    let chain = vec![mid.endorse(&new.public()), old.endorse(&mid.public())];
    let env = new.sign_desired(&desired(4, Some(100)), &chain);
    // a device that pinned the old key learns both newer keys
    let learned = check(&env, &[old.public()], 50).unwrap();
    assert_eq!(learned, vec![mid.public(), new.public()]);
    // an endorsement by a key the device does not trust teaches nothing
    let stranger = key(7);
    let forged = vec![stranger.endorse(&new.public())];
    let env = new.sign_desired(&desired(4, Some(100)), &forged);
    assert!(check(&env, &[old.public()], 50).is_err());
    // nor does an endorsement whose signature is not the signer's
    let mut bad = old.endorse(&new.public());
    bad.key = key(8).public().to_hex();
    let env = key(8).sign_desired(&desired(4, Some(100)), &[bad]);
    assert!(check(&env, &[old.public()], 50).is_err());
}

#[test]
fn malformed_keys_are_refused() {
    assert!(PublicKey::from_hex("zz").is_err());
    assert!(PublicKey::from_hex(&"ab".repeat(31)).is_err());
    assert!(SigningKey::from_hex("").is_err());
}

#[test]
fn a_key_that_endorsed_its_successor_signs_nothing_more() {
    let (old, new) = (key(1), key(2));
    let chain = vec![old.endorse(&new.public())];
    let env = new.sign_desired(&desired(4, Some(100)), &chain);
    let learned = check_retired(&env, &[old.public()], &[], 50).unwrap();
    assert_eq!(learned.retired, vec![old.public().id()]);
    // the old key (stolen, say) cannot sign for this device any more,
    // with or without the chain
    let by_old = old.sign_desired(&desired(5, Some(100)), &chain);
    let e = check_retired(&by_old, &[old.public(), new.public()], &learned.retired, 50);
    assert!(
        matches!(e, Err(DecodeError::Signature(SignatureError::Retired(_)))),
        "{e:?}"
    );
    let by_old = old.sign_desired(&desired(5, Some(100)), &[]);
    assert!(check_retired(&by_old, &[old.public()], &learned.retired, 50).is_err());
}

#[test]
fn a_root_endorsement_replaces_a_stolen_controller_key_and_the_root_stays_trusted() {
    let (root, stolen, fresh) = (key(7), key(1), key(2));
    let trusted = [stolen.public(), root.public()];
    let roots = [root.public().id()];
    let chain = [root.endorse(&fresh.public())];
    let env = fresh.sign_desired(&desired(5, Some(100)), &chain);
    let learned = check_rooted(&env, &trusted, &roots, &[], 50).unwrap();
    assert_eq!(learned.keys, vec![fresh.public()]);
    assert_eq!(learned.retired, vec![stolen.public().id()]);
    // the stolen key signs nothing more; the root may endorse again later
    let forged = stolen.sign_desired(&desired(6, Some(100)), &[]);
    let mut known = trusted.to_vec();
    known.push(fresh.public());
    let e = check_rooted(&forged, &known, &roots, &learned.retired, 50).unwrap_err();
    assert!(e.to_string().contains("rotated out"), "{e}");
    let next = key(3);
    let chain = [root.endorse(&next.public())];
    let env = next.sign_desired(&desired(7, Some(100)), &chain);
    let again = check_rooted(&env, &known, &roots, &learned.retired, 50).unwrap();
    assert_eq!(again.retired, vec![fresh.public().id()]);
}
