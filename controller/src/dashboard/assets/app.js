// Petrel dashboard: hash routes (#/, #/device/ID, #/rollouts,
// #/rollout/ID, #/alerts) rendered from the controller's API, refreshed
// by the live stream (/v1/stream) without reloading the page.
"use strict";

const PAGE = 50;
const state = { route: null, offset: 0, filter: { q: "", phase: "", release: "", online: "", labels: "" },
  summary: null, visible: new Set(), rates: {}, logs: {} };
const main = document.getElementById("main");

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const rel = r => r ? `${r.name}@${r.version}` : "-";
const badge = s => `<span class="badge b-${esc(s)}">${esc(s)}</span>`;
function bytes(n) {
  if (n == null) return "-";
  const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${u[i]}`;
}
function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
function duration(s) {
  if (s == null) return "-";
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

async function api(path, opts) {
  const o = Object.assign({ credentials: "same-origin" }, opts || {});
  // every change carries the dashboard's header (the controller refuses a
  // cookie-borne change without it: cross-site request forgery)
  o.headers = Object.assign({ "x-petrel-dashboard": "1" }, o.headers || {});
  const r = await fetch(path, o);
  if (r.status === 401) { location.href = "/ui/login"; throw new Error("signed out"); }
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(body && body.error ? body.error : `${r.status}`);
  return body;
}

// ---------- live stream ----------
function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("/v1/stream");
  es.addEventListener("tick", ev => {
    const tick = JSON.parse(ev.data);
    live.className = "live on";
    live.textContent = "live · " + new Date(tick.at_ms).toLocaleTimeString();
    onTick(tick);
  });
  es.onerror = () => {
    live.className = "live off"; live.textContent = "reconnecting…";
    if (es.readyState === EventSource.CLOSED) {
      // refused (a sign-in that expired: api() goes to the sign-in page)
      // or the controller is gone: ask, then try again
      api("/v1/fleet/summary").catch(() => {}).finally(() => setTimeout(connect, 3000));
    }
  };
}

let lastSlowRefresh = 0;
function onTick(tick) {
  const before = state.summary;
  state.summary = tick;
  const active = Object.values(tick.alerts || {}).reduce((a, b) => a + b, 0);
  const pill = document.getElementById("alert-count");
  pill.textContent = active; pill.classList.toggle("hidden", !active);
  const r = state.route;
  const touched = tick.all || tick.changed.some(id => state.visible.has(id));
  if (r.view === "fleet") {
    renderSummary();
    // a device joined or left, or one on screen (or possibly matching the
    // filter, or filling a short page) changed
    const joined = !before || before.summary.devices !== tick.summary.devices;
    const short = state.visible.size < PAGE;
    if (touched || joined || (tick.changed.length && (activeFilter() || short))) loadDevices();
  } else if (r.view === "device") {
    if (tick.all || tick.changed.includes(r.id)) loadDevice(r.id).catch(() => {});
  } else if (r.view === "alerts") {
    if (!before || JSON.stringify(before.alerts) !== JSON.stringify(tick.alerts)) route();
  } else if ((tick.changed.length || tick.all) && Date.now() - lastSlowRefresh > 3000) {
    // rollouts move with their devices: at most every 3 s
    lastSlowRefresh = Date.now();
    route();
  }
}

// ---------- routing ----------
function parseRoute() {
  const h = location.hash.replace(/^#/, "") || "/";
  let parts;
  try { parts = h.split("/").filter(Boolean).map(decodeURIComponent); }
  catch (e) { return { view: "fleet" }; }
  if (parts[0] === "device" && parts[1]) return { view: "device", id: parts[1] };
  if (parts[0] === "rollout" && parts[1]) return { view: "rollout", id: parts[1] };
  if (parts[0] === "rollouts") return { view: "rollouts" };
  if (parts[0] === "alerts") return { view: "alerts" };
  return { view: "fleet" };
}

function route() {
  const r = parseRoute();
  const changed = !state.route || state.route.view !== r.view || state.route.id !== r.id;
  state.route = r;
  document.querySelectorAll("[data-nav]").forEach(a => a.classList.toggle("active",
    a.dataset.nav === (r.view === "device" ? "fleet" : r.view === "rollout" ? "rollouts" : r.view)));
  const run = { fleet: showFleet, device: () => showDevice(r.id, changed), rollouts: showRollouts,
    rollout: () => showRollout(r.id), alerts: showAlerts }[r.view];
  run(changed).catch(e => { main.innerHTML = `<div class="card"><p class="error">${esc(e.message)}</p></div>`; });
}

// ---------- fleet ----------
function activeFilter() {
  const f = state.filter, terms = [];
  if (f.q) terms.push(`id~${f.q}`);
  if (f.phase) terms.push(`phase=${f.phase}`);
  if (f.release) terms.push(`release=${f.release}`);
  if (f.online) terms.push(`online=${f.online}`);
  if (f.labels) terms.push(f.labels);
  return terms.join(",");
}

async function showFleet(fresh) {
  if (fresh || !document.getElementById("devices")) {
    main.innerHTML = `
      <div id="summary"></div>
      <div class="card">
        <div class="filters">
          <input id="f-q" type="search" placeholder="Search device id" value="${esc(state.filter.q)}">
          <select id="f-phase"><option value="">any phase</option></select>
          <select id="f-release"><option value="">any release</option></select>
          <select id="f-online"><option value="">online or not</option><option value="true">online</option><option value="false">offline</option></select>
          <input id="f-labels" placeholder="labels: site=lab,tier!=canary" value="${esc(state.filter.labels)}">
        </div>
        <p id="filter-error" class="error hidden"></p>
        <table id="devices"><thead><tr><th>Device</th><th>Phase</th><th>Current</th><th>Desired</th><th>Progress</th><th>Last seen</th></tr></thead><tbody></tbody></table>
        <div class="pager"><button id="prev">‹ Prev</button><span id="range"></span><button id="next">Next ›</button></div>
      </div>`;
    for (const k of ["q", "labels"]) {
      document.getElementById(`f-${k}`).addEventListener("input", debounce(e => { state.filter[k] = e.target.value.trim(); state.offset = 0; loadDevices(); }, 250));
    }
    for (const k of ["phase", "release", "online"]) {
      document.getElementById(`f-${k}`).addEventListener("change", e => { state.filter[k] = e.target.value; state.offset = 0; loadDevices(); });
    }
    document.getElementById("prev").onclick = () => { state.offset = Math.max(0, state.offset - PAGE); loadDevices(); };
    document.getElementById("next").onclick = () => { state.offset += PAGE; loadDevices(); };
  }
  if (!state.summary) state.summary = await api("/v1/fleet/summary");
  renderSummary();
  await loadDevices();
}

function fillSelect(id, values, current) {
  const sel = document.getElementById(id);
  if (!sel) return;
  const have = new Set([...sel.options].map(o => o.value));
  for (const v of values) if (!have.has(v)) sel.add(new Option(v, v));
  sel.value = current;
}

function renderSummary() {
  const el = document.getElementById("summary");
  const t = state.summary;
  if (!el || !t) return;
  const s = t.summary, alerts = Object.values(t.alerts).reduce((a, b) => a + b, 0);
  const phases = Object.entries(s.phases).sort((a, b) => b[1] - a[1]);
  const bar = phases.map(([p, n]) => `<span class="p-${esc(p)}" style="width:${100 * n / Math.max(1, s.devices)}%" title="${esc(p)}: ${n}"></span>`).join("");
  const legend = phases.map(([p, n]) => `<span><i class="bar p-${esc(p)}" style="display:inline-block;min-width:0;width:10px;height:10px"><span class="p-${esc(p)}" style="width:100%"></span></i>${esc(p)} ${n}</span>`).join("");
  const releases = Object.entries(s.releases).sort((a, b) => b[1] - a[1]);
  el.innerHTML = `
    <div class="grid">
      <div class="card stat"><div class="n" id="n-devices">${s.devices}</div><div class="l">devices</div></div>
      <div class="card stat"><div class="n" id="n-online">${s.online}</div><div class="l">online</div></div>
      <div class="card stat"><div class="n">${s.devices - s.online}</div><div class="l">offline</div></div>
      <div class="card stat"><div class="n">${s.phases.running || 0}</div><div class="l">running</div></div>
      <div class="card stat"><div class="n">${alerts}</div><div class="l"><a href="#/alerts">alerts</a></div></div>
    </div>
    <div class="cols">
      <div class="card"><h2>Phases</h2><div class="bar" id="phase-bar">${bar}</div><div class="legend">${legend}</div></div>
      <div class="card"><h2>Releases in use</h2><table>${releases.map(([r, n]) => `<tr><td>${esc(r)}</td><td>${n}</td></tr>`).join("")}</table></div>
    </div>`;
  fillSelect("f-phase", Object.keys(s.phases), state.filter.phase);
  fillSelect("f-release", Object.keys(s.releases).filter(r => r !== "none"), state.filter.release);
}

function progressCell(d) {
  const p = d.progress || {};
  if (p.bytes_total > 0 && ["downloading", "installing"].includes(d.phase)) {
    const pct = Math.min(100, Math.round(100 * p.bytes_done / p.bytes_total));
    return `<div class="progress"><div class="bar"><span class="p-downloading" style="width:${pct}%"></span></div>${pct}%</div>`;
  }
  return `<span class="muted">${d.phase === "running" ? "" : esc(d.phase)}</span>`;
}

async function loadDevices() {
  const q = new URLSearchParams({ offset: state.offset, limit: PAGE });
  const f = activeFilter();
  if (f) q.set("filter", f);
  const err = document.getElementById("filter-error");
  let page;
  try { page = await api(`/v1/fleet/devices?${q}`); }
  catch (e) { if (err) { err.textContent = e.message; err.classList.remove("hidden"); } return; }
  if (err) err.classList.add("hidden");
  if (!page.devices.length && page.offset > 0) {
    // paged past the end (devices left): back to the last page
    state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
    return loadDevices();
  }
  const body = document.querySelector("#devices tbody");
  if (!body) return;
  state.visible = new Set(page.devices.map(d => d.id));
  body.innerHTML = page.devices.map(d => `
    <tr data-device="${esc(d.id)}">
      <td><span class="dot ${d.online ? "on" : ""}"></span><a href="#/device/${encodeURIComponent(d.id)}">${esc(d.id)}</a></td>
      <td>${badge(d.reported_at_ms ? d.phase : "never-reported")}</td>
      <td>${esc(rel(d.current))}</td><td>${esc(rel(d.desired))}</td>
      <td>${progressCell(d)}</td><td>${ago(d.last_seen_ms)}</td>
    </tr>${d.last_error && ["failed", "rolled-back"].includes(d.phase) ? `<tr><td></td><td colspan="5" class="err">${esc(d.last_error)}</td></tr>` : ""}`).join("")
    || `<tr><td colspan="6" class="muted">No device matches.</td></tr>`;
  const end = Math.min(page.total, page.offset + page.devices.length);
  document.getElementById("range").textContent = page.total ? `${page.offset + 1}–${end} of ${page.total}` : "0 devices";
  document.getElementById("prev").disabled = page.offset === 0;
  document.getElementById("next").disabled = end >= page.total;
}

function debounce(f, ms) { let t; return e => { clearTimeout(t); t = setTimeout(() => f(e), ms); }; }

// ---------- one device ----------
async function showDevice(id) {
  await loadDevice(id);
}

function rate(d) {
  const p = d.progress || {}, now = Date.now(), prev = state.rates[d.id];
  state.rates[d.id] = { at: now, done: p.bytes_done || 0, rate: prev ? prev.rate : null };
  if (prev && now > prev.at && p.bytes_done >= prev.done) {
    state.rates[d.id].rate = (p.bytes_done - prev.done) / ((now - prev.at) / 1000);
  }
  return state.rates[d.id].rate;
}

async function loadDevice(id) {
  const enc = encodeURIComponent(id);
  const [d, events, alerts] = await Promise.all([
    api(`/v1/devices/${enc}`), api(`/v1/devices/${enc}/events`), api(`/v1/alerts?device=${enc}&limit=20`)]);
  const p = d.progress || {}, r = rate(d), h = d.health;
  const labels = Object.entries(d.labels || {}).map(([k, v]) => `${esc(k)}=${esc(v)}`).join(", ") || "-";
  const progress = p.bytes_total ? `${bytes(p.bytes_done)} of ${bytes(p.bytes_total)} (${Math.round(100 * p.bytes_done / p.bytes_total)}%)${r ? ` at ${bytes(r)}/s` : ""}` : "-";
  const health = h ? `
      <dt>Uptime</dt><dd>${duration(h.uptime_s)} (agent ${duration(h.agent_uptime_s)})</dd>
      <dt>Memory</dt><dd>${h.mem_total_bytes ? `${bytes(h.mem_total_bytes - h.mem_available_bytes)} used of ${bytes(h.mem_total_bytes)}` : "-"}</dd>
      <dt>Load</dt><dd>${[h.load1_x100, h.load5_x100, h.load15_x100].map(x => (x / 100).toFixed(2)).join(" ")}</dd>
      <dt>Disk</dt><dd>${bytes(d.free_disk_bytes)} free${h.disk_total_bytes ? ` of ${bytes(h.disk_total_bytes)}` : ""}</dd>` :
    `<dt>Disk free</dt><dd>${bytes(d.free_disk_bytes)}</dd>`;
  main.innerHTML = `
    <p><a href="#/">‹ Fleet</a></p>
    <h1><span class="dot ${d.online ? "on" : ""}"></span>${esc(d.id)} ${badge(d.reported_at_ms ? d.phase : "never-reported")}</h1>
    <div class="cols">
      <div class="card"><h2>Release</h2><dl>
        <dt>Desired</dt><dd id="desired">${esc(rel(d.desired))} (generation ${d.desired_generation})</dd>
        <dt>Current</dt><dd id="current">${esc(rel(d.current))} (generation ${d.applied_generation})</dd>
        <dt>Installing</dt><dd>${esc(rel(d.target))}</dd>
        <dt>Progress</dt><dd id="progress">${progress}</dd>
        <dt>Last error</dt><dd class="${d.last_error ? "err" : ""}">${esc(d.last_error || "-")}</dd>${d.held_by ? `
        <dt>Update lock</dt><dd id="held-by">held by ${esc(d.held_by)}</dd>` : ""}
        <dt>Last update</dt><dd>${d.update_bytes != null ? bytes(d.update_bytes) + " downloaded" : "-"}</dd>
      </dl></div>
      <div class="card"><h2>Device</h2><dl>
        <dt>Status</dt><dd>${d.online ? "online" : "offline"}, seen ${ago(d.last_seen_ms)}</dd>
        <dt>Platform</dt><dd>${esc(d.platform ? (d.platform.os ? `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? "/" + d.platform.variant : ""}` : JSON.stringify(d.platform)) : "-")}</dd>
        <dt>Host name</dt><dd>${esc(d.hostname || "-")}</dd>
        <dt>Agent</dt><dd>${esc(d.agent_version || "-")}</dd>
        <dt>Labels</dt><dd>${labels}</dd>${health}
      </dl></div>
    </div>
    <div class="card"><h2>Services</h2><table><thead><tr><th>Service</th><th>State</th><th>Restarts</th><th>Exit code</th><th></th></tr></thead><tbody>
      ${(d.services || []).map(s => `<tr><td>${esc(s.name)}</td><td>${badge(s.state)}</td><td>${s.restarts}</td><td>${s.exit_code ?? "-"}</td>
        <td><button data-logs="${esc(serviceOf(s.name))}">Log tail</button></td></tr>`).join("") || `<tr><td colspan="5" class="muted">No services.</td></tr>`}
    </tbody></table><div id="log"></div></div>
    ${alerts.length ? `<div class="card"><h2>Alerts</h2><table>${alerts.map(a => `<tr><td>${badge(a.kind)}</td><td>${esc(a.message)}</td><td>${new Date(a.raised_ms).toLocaleString()}</td><td>${a.cleared_ms ? "cleared " + ago(a.cleared_ms) : "<b>active</b>"}</td></tr>`).join("")}</table></div>` : ""}
    <div class="card"><h2>Recent events</h2><table id="events"><thead><tr><th>When</th><th>Event</th><th>Gen</th><th>Message</th></tr></thead><tbody>
      ${events.slice(-30).reverse().map(e => `<tr><td>${new Date(e.at_ms).toLocaleTimeString()}</td><td>${badge(e.kind)}</td><td>${e.generation}</td><td>${esc(e.message)}</td></tr>`).join("") || `<tr><td colspan="4" class="muted">No events.</td></tr>`}
    </tbody></table></div>`;
  const shown = state.logs[id];
  if (shown) document.getElementById("log").innerHTML = shown;
  main.querySelectorAll("[data-logs]").forEach(b => b.onclick = () => showLog(id, b.dataset.logs));
}

// Instances are named SERVICE-gGENERATION; log tails are asked by service.
const serviceOf = instance => instance.replace(/-g\d+$/, "");

async function showLog(id, service) {
  const el = document.getElementById("log");
  el.innerHTML = `<p class="muted">Asking ${esc(id)} for the log of ${esc(service)}…</p>`;
  try {
    const r = await api(`/v1/devices/${encodeURIComponent(id)}/logs/${encodeURIComponent(service)}?tail=100`);
    const text = typeof r === "string" ? r : (r.error || r.text || "");
    state.logs[id] = `<h2>${esc(service)}: last lines${r.truncated ? " (truncated)" : ""}</h2><pre class="log">${esc(text) || "(empty)"}</pre>`;
  } catch (e) {
    state.logs[id] = `<p class="error">${esc(e.message)}</p>`;
  }
  el.innerHTML = state.logs[id];
}

// ---------- rollouts ----------
const rolloutPhase = p => p.state || "?";
function tallyBar(t) {
  const total = t.queued + t.started + t.succeeded + t.failed + t.other;
  return `<div class="bar">${["succeeded", "started", "failed", "queued", "other"].map(k => t[k] ? `<span class="s-${k}" style="width:${100 * t[k] / Math.max(1, total)}%" title="${k}: ${t[k]}"></span>` : "").join("")}</div>`;
}
const sum = (ts, k) => ts.reduce((a, t) => a + t[k], 0);

async function showRollouts() {
  const list = await api("/v1/rollouts");
  list.sort((a, b) => b.rollout.created_ms - a.rollout.created_ms);
  main.innerHTML = `<h1>Rollouts</h1><div class="card"><table><thead><tr><th>Rollout</th><th>Release</th><th>State</th><th>Progress</th><th>Done / total</th><th>Created</th></tr></thead><tbody>
    ${list.map(r => { const ts = r.rollout.tallies, t = { queued: sum(ts, "queued"), started: sum(ts, "started"), succeeded: sum(ts, "succeeded"), failed: sum(ts, "failed"), other: sum(ts, "other") };
      return `<tr><td><a href="#/rollout/${encodeURIComponent(r.rollout.id)}">${esc(r.rollout.id)}</a></td><td>${esc(rel(r.rollout.release))}</td><td>${badge(rolloutPhase(r.rollout.phase))}</td>
        <td style="width:30%">${tallyBar(t)}</td><td>${t.succeeded} / ${t.queued + t.started + t.succeeded + t.failed + t.other}</td><td>${ago(r.rollout.created_ms)}</td></tr>`; }).join("")
    || `<tr><td colspan="6" class="muted">No rollouts yet (petrel rollout create).</td></tr>`}</tbody></table></div>`;
}

async function showRollout(id) {
  const r = await api(`/v1/rollouts/${encodeURIComponent(id)}`);
  const ro = r.rollout, ph = ro.phase, st = rolloutPhase(ph);
  const buttons = st === "completed" || st === "aborted" ? "" : `
    ${st === "paused" ? `<button class="primary" data-verb="resume">Resume</button>` : `<button data-verb="pause">Pause</button>`}
    <button class="danger" data-verb="abort">Abort</button>`;
  main.innerHTML = `
    <p><a href="#/rollouts">‹ Rollouts</a></p>
    <h1>${esc(ro.id)} ${badge(st)}</h1>
    <div class="card"><dl><dt>Release</dt><dd>${esc(rel(ro.release))}</dd><dt>Selector</dt><dd>${esc((ro.selector.terms || []).map(t => JSON.stringify(t)).join(", ") || "every device")}</dd>
      ${ph.reason ? `<dt>Reason</dt><dd>${esc(ph.reason)}</dd>` : ""}</dl>
      <p id="rollout-buttons">${buttons}</p><p id="rollout-error" class="error"></p></div>
    <div class="card"><h2>Waves</h2>${ro.tallies.map((t, i) => `<div class="wave"><div>Wave ${i + 1}${ph.wave === i ? " ◂" : ""}</div>${tallyBar(t)}
      <div class="muted">${t.succeeded} succeeded, ${t.started} started, ${t.failed} failed, ${t.queued} queued</div></div>`).join("")}</div>
    <div class="card"><h2>Notes</h2><table>${(r.notes || []).slice(-20).reverse().map(n => `<tr><td>${new Date(n.at_ms).toLocaleTimeString()}</td><td>${esc(n.text)}</td></tr>`).join("")}</table></div>`;
  main.querySelectorAll("[data-verb]").forEach(b => b.onclick = async () => {
    const verb = b.dataset.verb;
    if (verb === "abort" && !confirm(`Abort rollout ${ro.id} and send its devices back?`)) return;
    try {
      await api(`/v1/rollouts/${encodeURIComponent(ro.id)}/${verb}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ reason: "from the dashboard" }) });
      showRollout(id);
    } catch (e) { document.getElementById("rollout-error").textContent = e.message; }
  });
}

// ---------- alerts ----------
async function showAlerts() {
  const list = await api("/v1/alerts?limit=200");
  main.innerHTML = `<h1>Alerts</h1><div class="card"><table><thead><tr><th>Device</th><th>Alert</th><th>Message</th><th>Raised</th><th>State</th></tr></thead><tbody>
    ${list.map(a => `<tr><td><a href="#/device/${encodeURIComponent(a.device_id)}">${esc(a.device_id)}</a></td><td>${badge(a.kind)}</td><td>${esc(a.message)}</td>
      <td>${new Date(a.raised_ms).toLocaleString()}</td><td>${a.cleared_ms ? "cleared " + ago(a.cleared_ms) : "<b>active</b>"}</td></tr>`).join("")
    || `<tr><td colspan="5" class="muted">No alerts.</td></tr>`}</tbody></table></div>`;
}

window.addEventListener("hashchange", route);
route();
connect();
