/**
 * The status page of Spore's HTTP tunnels: one self-contained HTML document (inline CSS and JS, no
 * external resources, no framework) that polls `GET /v1/status` and renders a table of tunnels.
 *
 * DOM contract (tests and operators' scripts rely on it):
 * - `<table id="tunnels">` whose `<tbody>` holds one `<tr data-tunnel="NAME">` per tunnel, sorted
 *   by name, or a single `<tr id="no-tunnels">` when there are none;
 * - each row has one `<td data-field="...">` per field: name, url (a link), online ("online" or
 *   "offline"), connections, totalConnections, bytesIn, bytesOut; the four counters carry the
 *   exact number in `data-value` (the bytes cells' text is human-readable);
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

function row(t) {
  const tr = document.createElement("tr");
  tr.dataset.tunnel = t.name;
  const link = document.createElement("a");
  link.textContent = t.url;
  // Only web links: a "javascript:" URL in a cell would run on click.
  if (/^https?:\\/\\//i.test(t.url)) link.href = t.url;
  link.rel = "noopener noreferrer";
  const url = cell("url", "");
  url.append(link);
  const online = cell("online", t.online ? "online" : "offline");
  online.className = t.online ? "online" : "offline";
  tr.append(
    cell("name", t.name), url, online,
    cell("connections", String(t.connections), t.connections),
    cell("totalConnections", String(t.totalConnections), t.totalConnections),
    cell("bytesIn", humanBytes(t.bytesIn), t.bytesIn),
    cell("bytesOut", humanBytes(t.bytesOut), t.bytesOut)
  );
  return tr;
}

let shown = null;
function render(tunnels) {
  // Rebuild only on change, so a selection in the table survives the 1 s polling.
  const json = JSON.stringify(tunnels);
  if (json === shown) return;
  shown = json;
  const sorted = [...tunnels].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (sorted.length === 0) {
    const tr = document.createElement("tr");
    tr.id = "no-tunnels";
    const td = document.createElement("td");
    td.colSpan = 7;
    td.textContent = "no tunnels";
    tr.append(td);
    tbody.replaceChildren(tr);
  } else {
    tbody.replaceChildren(...sorted.map(row));
  }
}

async function poll() {
  try {
    // Without a key the request still goes out: an operator's dashboard listener needs none.
    const headers = key ? { Authorization: "Bearer " + key } : {};
    // Bounded, so a hung request cannot stop the polling.
    const response = await fetch("/v1/status", { headers, cache: "no-store", signal: AbortSignal.timeout(5000) });
    if (response.status === 401) {
      showStatus("a valid API key is needed: open this page as /#token=YOUR_KEY", true);
    } else if (!response.ok) {
      throw new Error("HTTP " + response.status);
    } else {
      const body = await response.json();
      if (!Array.isArray(body.tunnels)) throw new Error("no tunnels in the response");
      render(body.tunnels);
      showStatus("updated " + new Date().toTimeString().slice(0, 8), false);
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
</style>
</head>
<body>
<h1>${title}</h1>
<p id="status"></p>
<table id="tunnels">
<thead><tr><th>name</th><th>url</th><th>status</th><th>connections</th><th>total</th><th>in</th><th>out</th></tr></thead>
<tbody></tbody>
</table>
<script>${script}</script>
</body>
</html>
`
}
