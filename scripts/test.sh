#!/usr/bin/env bash
# The test command: installs what the end-to-end tests need (Mosquitto, for
# the external-broker scenario; skopeo for the OCI import scenario;
# promtool, from prometheus, to check /metrics; chromium, for the
# dashboard's browser test) when missing, then runs every test of the
# workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
cargo test --workspace "$@"
