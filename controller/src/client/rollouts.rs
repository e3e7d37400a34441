//! The client side of rollouts and device labels.

use super::{Client, ClientError};
use crate::http::rollouts::{Command, CreateRollout, LabelChange};
use crate::rollouts::RolloutRecord;
use std::collections::BTreeMap;

impl Client {
    pub async fn create_rollout(&self, req: &CreateRollout) -> Result<RolloutRecord, ClientError> {
        let url = format!("{}/v1/rollouts", self.base);
        self.send(self.http.post(&url).json(req), &url).await
    }

    pub async fn rollouts(&self) -> Result<Vec<RolloutRecord>, ClientError> {
        let url = format!("{}/v1/rollouts", self.base);
        self.send(self.http.get(&url), &url).await
    }

    pub async fn rollout(&self, id: &str) -> Result<RolloutRecord, ClientError> {
        let url = format!("{}/v1/rollouts/{id}", self.base);
        self.send(self.http.get(&url), &url).await
    }

    /// `verb`: pause, resume or abort.
    pub async fn rollout_command(
        &self,
        id: &str,
        verb: &str,
        reason: Option<String>,
    ) -> Result<RolloutRecord, ClientError> {
        let url = format!("{}/v1/rollouts/{id}/{verb}", self.base);
        let body = Command { reason };
        self.send(self.http.post(&url).json(&body), &url).await
    }

    pub async fn put_group(
        &self,
        spec: &crate::http::groups::GroupSpec,
    ) -> Result<crate::http::groups::Group, ClientError> {
        let url = format!("{}/v1/groups", self.base);
        self.send(self.http.post(&url).json(spec), &url).await
    }

    pub async fn groups(&self) -> Result<Vec<crate::http::groups::Group>, ClientError> {
        let url = format!("{}/v1/groups", self.base);
        self.send(self.http.get(&url), &url).await
    }

    pub async fn delete_group(&self, name: &str) -> Result<(), ClientError> {
        let url = format!("{}/v1/groups/{name}", self.base);
        let _: serde_json::Value = self.send(self.http.delete(&url), &url).await?;
        Ok(())
    }

    /// Clears a device's desired state (it keeps what it runs).
    pub async fn undeploy(&self, id: &str) -> Result<crate::http::Undeployed, ClientError> {
        let url = format!("{}/v1/devices/{id}/desired", self.base);
        self.send(self.http.delete(&url), &url).await
    }

    pub async fn label_device(
        &self,
        id: &str,
        change: &LabelChange,
    ) -> Result<BTreeMap<String, String>, ClientError> {
        let url = format!("{}/v1/devices/{id}/labels", self.base);
        self.send(self.http.post(&url).json(change), &url).await
    }
}
