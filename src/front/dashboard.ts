/**
 * The status page and inspector of Spore's HTTP tunnels: one self-contained HTML document
 * (inline CSS and JS, no external resources, no framework) that polls `GET /v1/status`, renders a
 * table of tunnels with a plot of each one's last 15 minutes, and, for the tunnel picked, its
 * request log (`GET /v1/tunnels/ID/requests`), one request's detail, and a replay button.
 *
 * DOM contract (tests and operators' scripts rely on it):
 * - `<table id="tunnels">` whose `<tbody>` holds one `<tr data-tunnel="NAME">` per tunnel, sorted
 *   by name, or a single `<tr id="no-tunnels">` when there are none;
 * - each row has one `<td data-field="...">` per field: name, url (a link), online ("online" or
 *   "offline"), client (its client's address), node (in a cluster: the node holding it, else "—"),
 *   up (how long it has been online; `data-since`),
 *   connections, totalConnections, bytesIn, bytesOut, plot; the four counters carry the exact
 *   number in `data-value` (the bytes cells' text is human-readable); `plot` holds an `<svg>`
 *   with one `<polyline data-series="requests|bytes">` each, `data-total` their sums;
 * - on the operator's dashboard, whose /v1/status also lists them, `<table id="tcp-tunnels">`
 *   holds one `<tr data-port="PORT">` per TCP tunnel (Kafka proxies' included) with fields port,
 *   client, up, visitors, totalVisitors, bytesIn, bytesOut, plot (its visitors as `requests`);
 * - clicking a row picks its tunnel (class `selected`): `<section id="inspector">` shows its
 *   name in `#inspected` and `<table id="requests">`, one `<tr data-request="ID">` per logged
 *   request, newest first, with cells method, path, status, duration, bytes, visitor;
 * - clicking a request shows `<section id="detail">`: `#request-head`, `#request-body`,
 *   `#response-head`, `#response-body`, and `<button id="replay">` (disabled when the request
 *   cannot be replayed), whose answer is said in `#replay-status`;
 * - `<p id="status">`: "updated HH:MM:SS" after a good poll, otherwise an error text and the class
 *   `error`.
 */
import { createHash } from "node:crypto"

// Everything the page does at run time. Plain DOM calls only: tunnel names come from users, so
// data goes in through textContent and attributes, never through innerHTML.
const script = `"use strict";
// The key comes in the URL fragment (#token=KEY): browsers never send a fragment to the server,
// so it stays out of access logs, proxies and Referer headers. It is kept in sessionStorage
// (this tab only, gone when the tab closes) so a reload still works once it left the address bar.
const STORE = "spore.dashboard.token";
function readKey() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    const key = decodeURIComponent(match[1]);
    try { sessionStorage.setItem(STORE, key); } catch {}
    // Out of the address bar, history, bookmarks and screenshots.
    history.replaceState(null, "", location.pathname + location.search);
    return key;
  }
  try { return sessionStorage.getItem(STORE); } catch { return null; }
}
let key = readKey();
addEventListener("hashchange", () => { key = readKey() || key; });

const tbody = document.querySelector("#tunnels tbody");
const status = document.getElementById("status");

function showStatus(text, isError) {
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function humanBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? n + " B" : n.toFixed(n < 10 ? 1 : 0) + " " + units[i];
}

function cell(field, text, value) {
  const td = document.createElement("td");
  td.dataset.field = field;
  td.textContent = text;
  if (value !== undefined) td.dataset.value = String(value);
  return td;
}

const SVG = "http://www.w3.org/2000/svg";
// A small plot of the last 15 minutes: requests and bytes, each scaled to its own peak.
function plot(series) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", "180");
  svg.setAttribute("height", "36");
  svg.setAttribute("viewBox", "0 0 180 36");
  const base = document.createElementNS(SVG, "line");
  for (const [attribute, value] of [["x1", "0"], ["y1", "35"], ["x2", "180"], ["y2", "35"], ["stroke", "#ccc"]]) base.setAttribute(attribute, value);
  svg.append(base);
  // Requests as a filled area, bytes as a line over it; each scaled to its own peak.
  for (const [name, values, color, filled] of [["requests", series.requests, "#1a73e8", true], ["bytes", series.bytes, "#e37400", false]]) {
    const peak = Math.max(1, ...values);
    const step = 180 / Math.max(1, values.length - 1);
    const points = values.map((v, i) => (i * step).toFixed(1) + "," + (35 - (v / peak) * 32).toFixed(1));
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", (filled ? ["0,35", ...points, "180,35"] : points).join(" "));
    line.setAttribute("fill", filled ? "rgba(26,115,232,.25)" : "none");
    line.setAttribute("stroke", color);
    line.setAttribute("stroke-width", filled ? "1" : "1.5");
    line.dataset.series = name;
    line.dataset.total = String(values.reduce((a, b) => a + b, 0));
    svg.append(line);
  }
  const per = series.bucketSeconds;
  const title = document.createElementNS(SVG, "title");
  const last = series.requests.length - 1;
  title.textContent = "last 15 min; now " + (series.requests[last] / per).toFixed(1) + " req/s, " + humanBytes(Math.round(series.bytes[last] / per)) + "/s";
  svg.append(title);
  return svg;
}

// How long since \`since\` (an ISO time), kept current by tick() between renders.
function ago(since) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
}
function uptime(since) {
  const td = cell("up", since ? ago(since) : "—");
  if (since) td.dataset.since = since;
  return td;
}
function tick() {
  for (const td of document.querySelectorAll("td[data-since]")) td.textContent = ago(td.dataset.since);
}

// The single row of an empty table, across all its columns.
function emptyRow(id, columns, text) {
  const tr = document.createElement("tr");
  tr.id = id;
  const td = document.createElement("td");
  td.colSpan = columns;
  td.textContent = text;
  tr.append(td);
  return tr;
}

function chartOf(series) {
  const td = cell("plot", "");
  if (series) td.append(plot(series));
  return td;
}

let shownTcp = null;
function renderTcp(tunnels) {
  const table = document.getElementById("tcp-tunnels");
  table.hidden = false;
  const json = JSON.stringify(tunnels);
  if (json === shownTcp) return;
  shownTcp = json;
  const rows = tunnels.map((t) => {
    const tr = document.createElement("tr");
    tr.dataset.port = String(t.port);
    tr.append(
      cell("port", String(t.port), t.port),
      cell("client", t.client || "offline (its lease holds the port)"),
      uptime(t.openedAt),
      cell("visitors", String(t.visitors), t.visitors),
      cell("totalVisitors", String(t.totalVisitors), t.totalVisitors),
      cell("bytesIn", humanBytes(t.bytesIn), t.bytesIn),
      cell("bytesOut", humanBytes(t.bytesOut), t.bytesOut),
      chartOf(t.series)
    );
    return tr;
  });
  table.querySelector("tbody").replaceChildren(...(rows.length === 0 ? [emptyRow("no-tcp-tunnels", 8, "no tcp tunnels")] : rows));
}

let selected = null;
function row(t) {
  const tr = document.createElement("tr");
  tr.dataset.tunnel = t.name;
  if (selected && selected.id === t.id) tr.classList.add("selected");
  const link = document.createElement("a");
  link.textContent = t.url;
  // Only web links: a "javascript:" URL in a cell would run on click.
  if (/^https?:\\/\\//i.test(t.url)) link.href = t.url;
  link.rel = "noopener noreferrer";
  const url = cell("url", "");
  url.append(link);
  const online = cell("online", t.online ? "online" : "offline");
  online.className = t.online ? "online" : "offline";
  const chart = chartOf(t.series);
  tr.append(
    cell("name", t.name), url, online, cell("client", t.client || "—"), cell("node", t.node || "—"), uptime(t.onlineSince),
    cell("connections", String(t.connections), t.connections),
    cell("totalConnections", String(t.totalConnections), t.totalConnections),
    cell("bytesIn", humanBytes(t.bytesIn), t.bytesIn),
    cell("bytesOut", humanBytes(t.bytesOut), t.bytesOut),
    chart
  );
  tr.addEventListener("click", (event) => {
    if (event.target instanceof HTMLAnchorElement) return;
    selected = { id: t.id, name: t.name };
    picked = null;
    shown = null;
    document.getElementById("inspected").textContent = t.name;
    document.getElementById("inspector").hidden = false;
    document.getElementById("detail").hidden = true;
    inspect();
  });
  return tr;
}

let shown = null;
function render(tunnels) {
  // Rebuild only on change, so a selection in the table survives the 1 s polling.
  const json = JSON.stringify(tunnels);
  if (json === shown) return;
  shown = json;
  const sorted = [...tunnels].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  tbody.replaceChildren(...(sorted.length === 0 ? [emptyRow("no-tunnels", 11, "no tunnels")] : sorted.map(row)));
}

function authHeaders() {
  // Without a key the request still goes out: an operator's dashboard listener needs none.
  return key ? { Authorization: "Bearer " + key } : {};
}

async function api(path, method) {
  const response = await fetch(path, { method: method || "GET", headers: authHeaders(), cache: "no-store", signal: AbortSignal.timeout(5000) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
  return body;
}

// The request log of the selected tunnel; rebuilt only when it changed.
let logged = null;
let picked = null;
async function inspect() {
  if (!selected) return;
  const tunnel = selected;
  let entries;
  try {
    entries = await api("/v1/tunnels/" + encodeURIComponent(tunnel.id) + "/requests");
  } catch (error) {
    document.getElementById("requests-status").textContent = "the log could not be read: " + error.message;
    return;
  }
  if (selected !== tunnel) return;
  document.getElementById("requests-status").textContent = entries.length + " request(s) logged (the last 100 are kept)";
  const json = JSON.stringify(entries);
  if (json === logged) return;
  logged = json;
  const rows = entries.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.request = e.id;
    if (picked === e.id) tr.classList.add("selected");
    tr.append(
      cell("method", e.method),
      cell("path", e.path),
      cell("status", e.status === undefined ? "…" : String(e.status), e.status),
      cell("duration", e.duration_ms === undefined ? "…" : e.duration_ms + " ms", e.duration_ms),
      cell("bytes", humanBytes(e.bytes_in) + " / " + humanBytes(e.bytes_out), e.bytes_out),
      cell("visitor", e.remote_ip)
    );
    tr.addEventListener("click", () => detail(tunnel, e.id));
    return tr;
  });
  document.querySelector("#requests tbody").replaceChildren(...rows);
}

async function detail(tunnel, id) {
  picked = id;
  logged = null;
  let e;
  try {
    e = await api("/v1/tunnels/" + encodeURIComponent(tunnel.id) + "/requests/" + id);
  } catch (error) {
    document.getElementById("replay-status").textContent = "the request could not be read: " + error.message;
    return;
  }
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-title").textContent = e.method + " " + e.path + " → " + (e.status === undefined ? "no answer yet" : e.status);
  document.getElementById("request-head").textContent = e.request_head;
  document.getElementById("request-body").textContent = e.request_body || "(empty)";
  document.getElementById("response-head").textContent = e.response_head || "(none yet)";
  document.getElementById("response-body").textContent = e.response_body || "(empty)";
  const button = document.getElementById("replay");
  button.disabled = !e.replayable;
  button.title = e.replayable ? "send this request again through the tunnel" : "its body was over 1 KiB, or it was an upgrade";
  document.getElementById("replay-status").textContent = "";
  button.onclick = async () => {
    try {
      await api("/v1/tunnels/" + encodeURIComponent(tunnel.id) + "/requests/" + id + "/replay", "POST");
      document.getElementById("replay-status").textContent = "replayed: it shows at the top of the log";
    } catch (error) {
      document.getElementById("replay-status").textContent = "not replayed: " + error.message;
    }
  };
  inspect();
}

async function poll() {
  try {
    // Bounded, so a hung request cannot stop the polling.
    const response = await fetch("/v1/status", { headers: authHeaders(), cache: "no-store", signal: AbortSignal.timeout(5000) });
    if (response.status === 401) {
      showStatus("a valid API key is needed: open this page as /#token=YOUR_KEY", true);
    } else if (!response.ok) {
      throw new Error("HTTP " + response.status);
    } else {
      const body = await response.json();
      if (!Array.isArray(body.tunnels)) throw new Error("no tunnels in the response");
      render(body.tunnels);
      if (Array.isArray(body.tcp)) renderTcp(body.tcp);
      tick();
      showStatus("updated " + new Date().toTimeString().slice(0, 8), false);
      await inspect();
    }
  } catch {
    showStatus("server unreachable", true);
  }
  // After each answer rather than setInterval: a slow server never gets requests piling up.
  setTimeout(poll, 1000);
}
poll();
`

// A strict policy on top of the DOM discipline: nothing loads from elsewhere, and only this exact
// script runs (by hash, so an injected inline handler such as onerror is refused too).
const scriptHash = createHash("sha256").update(script).digest("base64")
const policy = [
  "default-src 'none'",
  `script-src 'sha256-${scriptHash}'`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'"
].join("; ")

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** The dashboard as one HTML document; `title` is escaped. */
export const dashboardPage = (options: { readonly title: string }): string => {
  const title = escapeHtml(options.title)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${policy}">
<title>${title}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .4rem .8rem; border-bottom: 1px solid #ddd; }
  td[data-value] { font-variant-numeric: tabular-nums; }
  .online { color: #16794c; }
  .offline { color: #888; }
  #status { color: #666; }
  #status.error { color: #b3261e; }
  #tunnels tbody tr, #requests tbody tr { cursor: pointer; }
  tr.selected { background: #eef3fd; }
  section { margin-top: 1.5rem; }
  pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; max-height: 16rem; white-space: pre-wrap; word-break: break-all; }
  .panes { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
  .legend span { margin-right: 1rem; }
</style>
</head>
<body>
<h1>${title}</h1>
<p id="status"></p>
<table id="tunnels">
<thead><tr><th>name</th><th>url</th><th>status</th><th>client</th><th>node</th><th>up</th><th>connections</th><th>total</th><th>in</th><th>out</th><th>last 15 min</th></tr></thead>
<tbody></tbody>
</table>
<p class="legend"><span style="color:#1a73e8">— requests/s</span><span style="color:#e37400">— bytes/s</span>click a tunnel for its requests</p>
<table id="tcp-tunnels" hidden>
<thead><tr><th>tcp port</th><th>client</th><th>up</th><th>visitors now</th><th>total</th><th>in</th><th>out</th><th>last 15 min (visitors, bytes)</th></tr></thead>
<tbody></tbody>
</table>
<section id="inspector" hidden>
<h2>requests of <span id="inspected"></span></h2>
<p id="requests-status"></p>
<table id="requests">
<thead><tr><th>method</th><th>path</th><th>status</th><th>time</th><th>in / out</th><th>visitor</th></tr></thead>
<tbody></tbody>
</table>
</section>
<section id="detail" hidden>
<h2 id="detail-title"></h2>
<p><button id="replay" type="button">replay</button> <span id="replay-status"></span></p>
<div class="panes">
<div><h3>request</h3><pre id="request-head"></pre><pre id="request-body"></pre></div>
<div><h3>response</h3><pre id="response-head"></pre><pre id="response-body"></pre></div>
</div>
</section>
<script>${script}</script>
</body>
</html>
`
}
