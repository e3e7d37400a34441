//! Typed HTTP client of the controller API, shared by the `petrel` CLI,
//! the simulator and the end-to-end tests.

use crate::gc::GcReport;
use crate::http::{CreateRelease, CreatedRelease, Deploy, Deployed, DeviceView, ImageSpec};
use crate::images::Imported;
use petrel_protocol::{Event, ImageConfig, ImageManifest, LayerDescriptor, ReleaseManifest};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Why a request failed. Each message is whole on its own (the cause's
/// text included, never also exposed as `source()`), so `{:#}` prints it
/// once.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach controller at {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("controller refused {url} ({status}): {message}")]
    Api {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is a directory but neither a docker-save directory (manifest.json) nor an OCI image layout (oci-layout + index.json)")]
    NotAnImageDir { path: PathBuf },
    #[error("packing {path}: {reason}")]
    Pack { path: PathBuf, reason: String },
    #[error("provisioning into {path}: {reason}")]
    Provision { path: PathBuf, reason: String },
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// How the client proves who it is and whom it trusts.
#[derive(Clone, Default)]
pub struct Credentials {
    /// Bearer token (`PETREL_TOKEN`).
    pub token: Option<String>,
    /// The fleet CA (PEM) an `https://` controller is checked against.
    pub ca_pem: Option<String>,
}

impl Client {
    /// A client without credentials (only device downloads on an
    /// insecure controller will answer it).
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// A client presenting `creds`.
    pub fn with_credentials(base: &str, creds: &Credentials) -> Result<Client, ClientError> {
        let fail = |reason: String| ClientError::Http {
            url: base.to_string(),
            reason,
        };
        let mut builder = reqwest::Client::builder();
        if let Some(token) = &creds.token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| fail("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        if let Some(ca) = &creds.ca_pem {
            let tls = petrel_tls::client_config(ca, None).map_err(|e| fail(e.to_string()))?;
            builder = builder.use_preconfigured_tls(tls);
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            http: builder
                .build()
                .map_err(|e| fail(petrel_protocol::error_text(&e)))?,
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, ClientError> {
        let http_err = |e: reqwest::Error| ClientError::Http {
            url: url.to_string(),
            reason: petrel_protocol::error_text(&e),
        };
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status();
        if !status.is_success() {
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            return Err(ClientError::Api {
                url: url.to_string(),
                status: status.as_u16(),
                message: body["error"].as_str().unwrap_or("no details").to_string(),
            });
        }
        resp.json().await.map_err(http_err)
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics_text(&self) -> Result<String, ClientError> {
        let url = format!("{}/metrics", self.base);
        let http_err = |e: reqwest::Error| ClientError::Http {
            url: url.clone(),
            reason: petrel_protocol::error_text(&e),
        };
        let resp = self.http.get(&url).send().await.map_err(http_err)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ClientError::Api {
                url: url.clone(),
                status: status.as_u16(),
                message: "metrics unavailable".into(),
            });
        }
        resp.text().await.map_err(http_err)
    }

    /// A file as a streamed body with its length declared, so a
    /// controller that will not take it says so before it is sent.
    async fn file_body(path: &Path) -> Result<(reqwest::Body, u64), ClientError> {
        let io = |error| ClientError::Io {
            path: path.to_path_buf(),
            error,
        };
        let meta = tokio::fs::metadata(path).await.map_err(io)?;
        if meta.is_dir() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory, a file was expected",
            )));
        }
        let file = tokio::fs::File::open(path).await.map_err(io)?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        Ok((body, meta.len()))
    }

    /// Uploads an image in any form `docker load` or skopeo take: a
    /// docker-save or OCI archive (plain, gzip or zstd), or a directory
    /// holding either layout (packed into a tar here first).
    pub async fn import_image(
        &self,
        file: &Path,
        name: &str,
        tag: &str,
    ) -> Result<Imported, ClientError> {
        let url = format!("{}/v1/images/import", self.base);
        let io = |error| ClientError::Io {
            path: file.to_path_buf(),
            error,
        };
        let packed;
        let (body, len) = if tokio::fs::metadata(file).await.map_err(io)?.is_dir() {
            Self::check_image_dir(file)?;
            packed = Self::pack_dir(file).await?;
            Self::file_body(&packed).await?
        } else {
            Self::file_body(file).await?
        };
        self.check_upload(len).await?;
        let shown = file.display().to_string();
        let req = self
            .http
            .post(&url)
            .query(&[("name", name), ("tag", tag), ("file", &shown)])
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        self.send(req, &url).await
    }

    /// A directory must hold one of the two layouts at its top.
    fn check_image_dir(dir: &Path) -> Result<(), ClientError> {
        let has = |name: &str| dir.join(name).is_file();
        if has("manifest.json") || (has("oci-layout") && has("index.json")) {
            return Ok(());
        }
        Err(ClientError::NotAnImageDir {
            path: dir.to_path_buf(),
        })
    }

    /// Packs `dir` as one layer, uploads it, and registers the image.
    pub async fn build_image(
        &self,
        dir: &Path,
        name: &str,
        tag: &str,
        config: ImageConfig,
    ) -> Result<Imported, ClientError> {
        let tar = Self::pack_dir(dir).await?;
        let (body, len) = Self::file_body(&tar).await?;
        self.check_upload(len).await?;
        let url = format!("{}/v1/layers", self.base);
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        let layer = self.send(req, &url).await?;
        self.put_image(name, tag, vec![layer], config).await
    }

    /// Registers an image made of already-uploaded layers; the controller
    /// refuses it if devices would refuse a layer.
    pub async fn put_image(
        &self,
        name: &str,
        tag: &str,
        layers: Vec<LayerDescriptor>,
        config: ImageConfig,
    ) -> Result<Imported, ClientError> {
        let url = format!("{}/v1/images/{name}/{tag}", self.base);
        let spec = ImageSpec {
            layers,
            config,
            platform: None,
        };
        self.send(self.http.put(&url).json(&spec), &url).await
    }

    /// Uploads one uncompressed layer tar; the controller stores it zstd'd.
    pub async fn upload_layer(&self, tar: Vec<u8>) -> Result<LayerDescriptor, ClientError> {
        self.check_upload(tar.len() as u64).await?;
        let url = format!("{}/v1/layers", self.base);
        self.send(self.http.post(&url).body(tar), &url).await
    }

    /// The controller's limits.
    pub async fn limits(&self) -> Result<crate::http::LimitsView, ClientError> {
        let url = format!("{}/v1/limits", self.base);
        self.send(self.http.get(&url), &url).await
    }

    /// Refuses, before sending a byte, an upload the controller would
    /// refuse (it cuts the connection, which a client reads as a broken
    /// pipe rather than its 413).
    async fn check_upload(&self, len: u64) -> Result<(), ClientError> {
        let limits = self.limits().await?;
        if len <= limits.max_upload_bytes {
            return Ok(());
        }
        Err(ClientError::Api {
            url: format!("{}/v1/limits", self.base),
            status: 413,
            message: format!(
                "the upload is {len} bytes, over the controller's limit of {} bytes (petrel-controller serve --max-upload-bytes)",
                limits.max_upload_bytes
            ),
        })
    }

    /// Writes the deterministic layer tar of `dir` to a temp file.
    async fn pack_dir(dir: &Path) -> Result<tempfile::TempPath, ClientError> {
        let pack_err = |reason: String| ClientError::Pack {
            path: dir.to_path_buf(),
            reason,
        };
        let tmp = tempfile::NamedTempFile::new().map_err(|e| pack_err(e.to_string()))?;
        let (file, tmp_path) = tmp.into_parts();
        let src = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            crate::images::tar_dir(&src, std::io::BufWriter::new(file))
        })
        .await
        .map_err(|e| pack_err(e.to_string()))?
        .map_err(|e| pack_err(e.to_string()))?;
        Ok(tmp_path)
    }

    pub async fn create_release(
        &self,
        name: &str,
        version: &str,
        compose: &str,
    ) -> Result<CreatedRelease, ClientError> {
        let url = format!("{}/v1/releases", self.base);
        let req = CreateRelease {
            name: name.into(),
            version: version.into(),
            compose: compose.into(),
        };
        self.send(self.http.post(&url).json(&req), &url).await
    }

    /// Deploys to devices, accepting ids not seen yet (agents started a
    /// moment ago, as the simulator and tests do); the CLI asks for
    /// [`Client::deploy_with`] and refuses unknown ids unless told.
    pub async fn deploy(
        &self,
        release: &str,
        devices: &[String],
    ) -> Result<Vec<Deployed>, ClientError> {
        let req = Deploy {
            release: release.into(),
            devices: devices.to_vec(),
            allow_new: true,
            force: false,
            budget: None,
        };
        self.deploy_with(&req).await
    }

    /// Deploys as `req` says; without `allow_new`, an id the controller
    /// has never heard of is an error (nothing is deployed).
    pub async fn deploy_with(&self, req: &Deploy) -> Result<Vec<Deployed>, ClientError> {
        let url = format!("{}/v1/deployments", self.base);
        self.send(self.http.post(&url).json(req), &url).await
    }

    /// Every device's view, read a page at a time.
    pub async fn devices(&self) -> Result<Vec<DeviceView>, ClientError> {
        const PAGE: usize = 1_000;
        let mut all: Vec<DeviceView> = Vec::new();
        loop {
            let after = all.last().map(|v| v.id.as_str());
            let page = self.devices_page(after, PAGE).await?;
            let last = page.len() < PAGE;
            all.extend(page);
            if last {
                return Ok(all);
            }
        }
    }

    /// Up to `limit` device views after the device `after`, in id order.
    pub async fn devices_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeviceView>, ClientError> {
        let url = format!("{}/v1/devices", self.base);
        let mut query = vec![("limit", limit.to_string())];
        if let Some(a) = after {
            query.push(("after", a.to_string()));
        }
        self.send(self.http.get(&url).query(&query), &url).await
    }

    pub async fn events(&self, device: &str) -> Result<Vec<Event>, ClientError> {
        let url = format!("{}/v1/devices/{device}/events", self.base);
        self.send(self.http.get(&url), &url).await
    }

    pub async fn images(&self) -> Result<Vec<ImageManifest>, ClientError> {
        let url = format!("{}/v1/images", self.base);
        self.send(self.http.get(&url), &url).await
    }

    pub async fn releases(&self) -> Result<Vec<ReleaseManifest>, ClientError> {
        let url = format!("{}/v1/releases", self.base);
        self.send(self.http.get(&url), &url).await
    }

    pub async fn release(&self, name: &str, version: &str) -> Result<ReleaseManifest, ClientError> {
        let url = format!("{}/v1/releases/{name}/{version}", self.base);
        self.send(self.http.get(&url), &url).await
    }

    /// Deletes a release (refused while a device uses it).
    pub async fn delete_release(&self, name: &str, version: &str) -> Result<GcReport, ClientError> {
        let url = format!("{}/v1/releases/{name}/{version}", self.base);
        self.send(self.http.delete(&url), &url).await
    }

    /// Deletes an image (refused while a release uses it).
    pub async fn delete_image(&self, name: &str, tag: &str) -> Result<GcReport, ClientError> {
        let url = format!("{}/v1/images/{name}/{tag}", self.base);
        self.send(self.http.delete(&url), &url).await
    }

    pub async fn device(&self, id: &str) -> Result<DeviceView, ClientError> {
        let url = format!("{}/v1/devices/{id}", self.base);
        self.send(self.http.get(&url), &url).await
    }

    /// The last `tail` lines of `service`'s output on `device`, asked of
    /// the device (an error if it does not answer within the controller's
    /// wait, or runs no such service).
    pub async fn device_logs(
        &self,
        device: &str,
        service: &str,
        tail: u32,
    ) -> Result<petrel_protocol::LogReply, ClientError> {
        let url = format!("{}/v1/devices/{device}/logs/{service}", self.base);
        let req = self.http.get(&url).query(&[("tail", tail)]);
        self.send(req, &url).await
    }

    /// Forgets a device; returns its last view.
    pub async fn forget_device(&self, id: &str) -> Result<DeviceView, ClientError> {
        let url = format!("{}/v1/devices/{id}", self.base);
        self.send(self.http.delete(&url), &url).await
    }

    /// Collects blobs, deltas and path lists nothing references.
    pub async fn gc(&self) -> Result<GcReport, ClientError> {
        let url = format!("{}/v1/gc", self.base);
        self.send(self.http.post(&url), &url).await
    }

    /// The controller's signing key (what agents pin).
    pub async fn signing_key(&self) -> Result<crate::http::KeyView, ClientError> {
        let url = format!("{}/v1/keys", self.base);
        self.send(self.http.get(&url), &url).await
    }

    /// Rotates the signing key; returns the new one.
    pub async fn rotate_key(&self) -> Result<crate::http::KeyView, ClientError> {
        let url = format!("{}/v1/keys/rotate", self.base);
        self.send(self.http.post(&url), &url).await
    }
}

mod fleet;
mod rollouts;
mod security;
pub use fleet::AlertFilter;
pub use security::ProvisionOptions;
