//! The client side of the fleet index and the alerts: server-side
//! filters, the summary, filtered pages, alerts.

use super::{Client, ClientError};
use crate::http::fleet::FleetPage;
use crate::http::DeviceView;
use crate::monitor::alerts::Alert;
use crate::monitor::LiveTick;

/// Which alerts [`Client::alerts`] asks for.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only this device's.
    pub device: Option<String>,
    /// Only those whose condition still holds.
    pub active: bool,
    /// At most this many, newest first (the controller's default: 100).
    pub limit: Option<usize>,
}

impl Client {
    /// Every device a filter (a selector over labels and facts, with
    /// `phase`, `release`, `online` and `key~text`) selects, read a page at
    /// a time; a bad filter is the controller's 400 with its reason.
    pub async fn devices_filtered(&self, filter: &str) -> Result<Vec<DeviceView>, ClientError> {
        const PAGE: usize = 1_000;
        let url = format!("{}/v1/devices", self.base);
        let mut all: Vec<DeviceView> = Vec::new();
        loop {
            let mut query = vec![("filter", filter.to_string()), ("limit", PAGE.to_string())];
            if let Some(last) = all.last() {
                query.push(("after", last.id.clone()));
            }
            let page: Vec<DeviceView> = self.send(self.http.get(&url).query(&query), &url).await?;
            let last = page.len() < PAGE;
            all.extend(page);
            if last {
                return Ok(all);
            }
        }
    }

    /// `GET /v1/fleet/summary`: counts by phase, presence and release,
    /// and active alerts by kind.
    pub async fn fleet_summary(&self) -> Result<LiveTick, ClientError> {
        let url = format!("{}/v1/fleet/summary", self.base);
        self.send(self.http.get(&url), &url).await
    }

    /// One page (at most 500) of the devices `filter` selects, with their
    /// number in all.
    pub async fn fleet_page(
        &self,
        filter: &str,
        offset: usize,
        limit: usize,
    ) -> Result<FleetPage, ClientError> {
        let url = format!("{}/v1/fleet/devices", self.base);
        let query = [
            ("filter", filter.to_string()),
            ("offset", offset.to_string()),
            ("limit", limit.to_string()),
        ];
        self.send(self.http.get(&url).query(&query), &url).await
    }

    /// Every device `filter` selects, through [`Client::fleet_page`].
    pub async fn fleet_devices(&self, filter: &str) -> Result<Vec<DeviceView>, ClientError> {
        const PAGE: usize = crate::http::fleet::MAX_FLEET_PAGE;
        let mut all = Vec::new();
        loop {
            let page = self.fleet_page(filter, all.len(), PAGE).await?;
            let got = page.devices.len();
            all.extend(page.devices);
            if got == 0 || all.len() >= page.total {
                return Ok(all);
            }
        }
    }

    /// Alerts, newest first.
    pub async fn alerts(&self, which: &AlertFilter) -> Result<Vec<Alert>, ClientError> {
        let url = format!("{}/v1/alerts", self.base);
        let mut query = vec![("active", which.active.to_string())];
        if let Some(d) = &which.device {
            query.push(("device", d.clone()));
        }
        if let Some(n) = which.limit {
            query.push(("limit", n.to_string()));
        }
        self.send(self.http.get(&url).query(&query), &url).await
    }
}
