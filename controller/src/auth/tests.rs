use super::*;

fn peer(cert: Option<&str>) -> Peer {
    Peer {
        addr: "127.0.0.1:1".parse().unwrap(),
        cert: cert.map(|id| petrel_tls::PeerCertificate {
            identity: id.into(),
            serial: "01".into(),
        }),
    }
}

fn with_token(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    h
}

#[test]
fn routes_need_what_their_effect_deserves() {
    assert_eq!(need(&Method::GET, "/v1/blobs/sha256:ab"), Need::Device);
    assert_eq!(need(&Method::GET, "/v1/deltas/a/b"), Need::Device);
    assert_eq!(need(&Method::GET, "/v1/devices"), Need::Role(Role::Viewer));
    assert_eq!(
        need(&Method::GET, "/v1/devices/pi/events"),
        Need::Role(Role::Viewer)
    );
    assert_eq!(
        need(&Method::GET, "/v1/devices/pi/logs/web"),
        Need::Role(Role::Operator)
    );
    assert_eq!(
        need(&Method::GET, "/v1/devices/logs/events"),
        Need::Role(Role::Viewer)
    );
    assert_eq!(
        need(&Method::POST, "/v1/deployments"),
        Need::Role(Role::Operator)
    );
    assert_eq!(
        need(&Method::POST, "/v1/layers"),
        Need::Role(Role::Operator)
    );
    assert_eq!(
        need(&Method::POST, "/v1/keys/rotate"),
        Need::Role(Role::Admin)
    );
    assert_eq!(need(&Method::POST, "/v1/tokens"), Need::Role(Role::Admin));
    assert_eq!(need(&Method::GET, "/v1/tokens"), Need::Role(Role::Admin));
    assert_eq!(
        need(&Method::POST, "/v1/devices/pi/revoke"),
        Need::Role(Role::Admin)
    );
}

#[test]
fn roles_tokens_and_device_certificates_are_each_held_to_their_routes() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Arc::new(Tokens::open(dir.path()).unwrap());
    let (_, viewer) = tokens.create(Role::Viewer, "wall screen").unwrap();
    let (_, operator) = tokens.create(Role::Operator, "ci").unwrap();
    let auth = Auth { tokens, pki: None };
    let get = Method::GET;
    let post = Method::POST;
    let none = HeaderMap::new();
    let code = |r: Result<Caller, Refused>| r.err().map(|e| e.0.as_u16());
    assert_eq!(
        code(auth.authorize(&peer(None), &get, "/v1/devices", &none)),
        Some(401)
    );
    assert_eq!(
        code(auth.authorize(&peer(None), &get, "/v1/devices", &with_token(&viewer))),
        None
    );
    let deploy = auth.authorize(&peer(None), &post, "/v1/deployments", &with_token(&viewer));
    let refused = deploy.err().unwrap();
    assert_eq!(refused.0.as_u16(), 403);
    assert!(refused.1.contains("needs operator"), "{}", refused.1);
    assert_eq!(
        code(auth.authorize(
            &peer(None),
            &post,
            "/v1/deployments",
            &with_token(&operator)
        )),
        None
    );
    assert_eq!(
        code(auth.authorize(
            &peer(None),
            &post,
            "/v1/keys/rotate",
            &with_token(&operator)
        )),
        Some(403)
    );
    assert_eq!(
        code(auth.authorize(&peer(None), &get, "/v1/devices", &with_token("petrel_00_x"))),
        Some(401)
    );
    // a device certificate downloads, and does nothing else
    let dev = peer(Some("pi-1"));
    assert_eq!(
        auth.authorize(&dev, &get, "/v1/blobs/sha256:00", &none)
            .ok(),
        Some(Caller::Device("pi-1".into()))
    );
    assert_eq!(
        code(auth.authorize(&dev, &post, "/v1/deployments", &none)),
        Some(403)
    );
    // insecure mode: downloads are open, nothing else is
    assert_eq!(
        auth.authorize(&peer(None), &get, "/v1/blobs/x", &none).ok(),
        Some(Caller::Anonymous)
    );
}
