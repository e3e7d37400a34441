use super::*;
use crate::manifest::tests::sample_release;

fn variant(arch: &str, variant: Option<&str>) -> ImageManifest {
    let mut image = sample_release("1").services["web"].image.clone();
    image.platform = Some(Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant: variant.map(String::from),
    });
    image.layers[0].size = arch.len() as u64; // tell the variants apart
    image
}

fn multi_platform() -> ReleaseManifest {
    let mut r = sample_release("1");
    let svc = r.services.get_mut("web").unwrap();
    svc.variants = vec![
        variant("amd64", None),
        variant("arm64", None),
        variant("arm", Some("v7")),
    ];
    svc.image = svc.variants[0].clone();
    r
}

#[test]
fn platforms_parse_and_print_as_oci_names() {
    let p: Platform = "linux/arm/v7".parse().unwrap();
    assert_eq!(
        (p.architecture.as_str(), p.variant.as_deref()),
        ("arm", Some("v7"))
    );
    assert_eq!(p.to_string(), "linux/arm/v7");
    assert_eq!(
        "linux/arm64".parse::<Platform>().unwrap().to_string(),
        "linux/arm64"
    );
    for bad in ["linux", "linux/", "a/b/c/d", "linux/arm 64"] {
        assert!(bad.parse::<Platform>().is_err(), "{bad}");
    }
    assert!(!Platform::host().architecture.is_empty());
}

#[test]
fn each_device_gets_the_variant_for_its_platform() {
    let r = multi_platform();
    for (device, arch) in [
        ("linux/arm64", "arm64"),
        ("linux/arm/v7", "arm"),
        ("linux/amd64", "amd64"),
    ] {
        let resolved = r.for_platform(Some(&device.parse().unwrap())).unwrap();
        let svc = &resolved.services["web"];
        assert!(
            svc.variants.is_empty(),
            "a device gets one image per service"
        );
        assert_eq!(
            svc.image.platform.as_ref().unwrap().architecture,
            arch,
            "{device}"
        );
    }
    // unknown device platform: the default variant
    let resolved = r.for_platform(None).unwrap();
    assert_eq!(
        resolved.services["web"]
            .image
            .platform
            .as_ref()
            .unwrap()
            .architecture,
        "amd64"
    );
}

#[test]
fn a_platform_the_image_lacks_is_refused_naming_what_there_is() {
    let err = multi_platform()
        .for_platform(Some(&"linux/riscv64".parse().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("app") && err.contains("no linux/riscv64 variant"),
        "{err}"
    );
    assert!(
        err.contains("linux/amd64, linux/arm64, linux/arm/v7"),
        "{err}"
    );
    // a single-platform image for another platform too
    let mut single = sample_release("1");
    single.services.get_mut("web").unwrap().image = variant("amd64", None);
    assert!(single
        .for_platform(Some(&"linux/arm64".parse().unwrap()))
        .is_err());
    // an image without a platform runs anywhere
    assert!(sample_release("1")
        .for_platform(Some(&"linux/arm64".parse().unwrap()))
        .is_ok());
}

#[test]
fn variants_match_when_only_one_side_names_one() {
    let arm64: Platform = "linux/arm64".parse().unwrap();
    let arm64_v8: Platform = "linux/arm64/v8".parse().unwrap();
    let armv6: Platform = "linux/arm/v6".parse().unwrap();
    let armv7: Platform = "linux/arm/v7".parse().unwrap();
    assert!(arm64_v8.runs_on(&arm64) && arm64.runs_on(&arm64_v8));
    assert!(!armv6.runs_on(&armv7));
    assert!(!arm64.runs_on(&armv7));
}
