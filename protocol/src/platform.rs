//! Platforms (`linux/amd64`, `linux/arm64`, `linux/arm/v7` …): what an
//! image variant is built for and what a device runs, so a fleet of
//! Raspberry Pis managed from an x86 controller gets the arm variants.
//!
//! A multi-platform image reaches a release as one [`ImageManifest`] per
//! platform (`ServiceSpec::variants`); [`ReleaseManifest::for_platform`]
//! picks each service's variant for one device, so the desired state a
//! device receives names exactly one image per service.

use crate::{ImageManifest, ManifestError, ReleaseManifest};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An OCI platform: os, architecture and an optional variant (`v7`, `v8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary was built for, in OCI names.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(String::from),
        }
    }

    /// Whether an image built for `self` runs on a device of `device`. A
    /// variant given on only one side matches any (arm64 images seldom
    /// name `v8`); given on both, it must be equal.
    pub fn runs_on(&self, device: &Platform) -> bool {
        let variant_ok = match (&self.variant, &device.variant) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.os == device.os && self.architecture == device.architecture && variant_ok
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// Why a platform string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a platform: write OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7")]
pub struct InvalidPlatform(pub String);

impl FromStr for Platform {
    type Err = InvalidPlatform;

    fn from_str(s: &str) -> Result<Platform, InvalidPlatform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
            return Err(InvalidPlatform(s.to_string()));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl ReleaseManifest {
    /// The release as a device of `platform` runs it: each service's image
    /// is its variant for that platform. A service whose image has no such
    /// variant (or whose one image names another platform) is an error
    /// naming the service and the platforms there are. An image without a
    /// platform (built from a directory) runs anywhere; so does every image
    /// when the device's platform is unknown (`None`: the default variant).
    pub fn for_platform(
        &self,
        platform: Option<&Platform>,
    ) -> Result<ReleaseManifest, ManifestError> {
        let mut out = self.clone();
        let Some(platform) = platform else {
            out.services.values_mut().for_each(|s| s.variants.clear());
            return Ok(out);
        };
        for (name, svc) in out.services.iter_mut() {
            let candidates: Vec<&ImageManifest> = match svc.variants.is_empty() {
                true => vec![&svc.image],
                false => svc.variants.iter().collect(),
            };
            let fits =
                |i: &&&ImageManifest| i.platform.as_ref().is_none_or(|p| p.runs_on(platform));
            let Some(chosen) = candidates.iter().find(fits).map(|i| (*i).clone()) else {
                let have: Vec<String> = candidates
                    .iter()
                    .filter_map(|i| i.platform.as_ref().map(Platform::to_string))
                    .collect();
                return Err(ManifestError::Service {
                    service: name.clone(),
                    reason: format!(
                        "image {}:{} has no {platform} variant (it has {})",
                        svc.image.name,
                        svc.image.tag,
                        have.join(", ")
                    ),
                });
            };
            svc.image = chosen;
            svc.variants.clear();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
