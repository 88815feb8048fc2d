// Corral's dashboard: the cluster as one node's HTTP gateway shows it.
// Plain JavaScript, no framework and nothing fetched from elsewhere; every
// piece of data comes from /api/v1/ (see /api/v1/openapi.json).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  role: "", tokens: false, node: "",
  nodes: [], defs: [], procs: new Map(), // id → process
  sort: { key: "cpu", asc: false }, filter: "", status: "", ended: false,
  selected: null, series: new Map(), // id → {cpu: [], mem: []}
  live: null, logs: null, events: null,
};
const SERIES = 120; // samples per chart
const lifecycle = ["process.spawned", "process.stopped", "process.crashed", "process.restarted",
  "process.reconnected", "process.node_lost", "process.stale"];

// --- helpers ---
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
function human(bytes) {
  if (bytes == null) return "-";
  for (const [n, u] of [[1e9, "GB"], [1e6, "MB"], [1e3, "kB"]]) if (bytes >= n) return (bytes / n).toFixed(1) + u;
  return bytes.toFixed(0) + "B";
}
function duration(ms) {
  if (ms == null || ms < 0) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + String(Math.floor(s / 3600) % 24).padStart(2, "0") + "h";
}
function say(text, error) {
  const el = $("#status");
  el.textContent = text;
  el.className = error ? "error" : "";
}
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body ?? {});
  }
  const res = await fetch("/api/v1/" + path, opts);
  const data = await res.json().catch(() => ({ error: res.statusText, code: res.status }));
  if (res.status === 401 && path !== "session") showLogin();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}
let throttled = new Map();
function later(key, fn, ms) { // fn once, ms from the first call
  if (throttled.has(key)) return;
  throttled.set(key, setTimeout(() => { throttled.delete(key); fn(); }, ms));
}

// --- signing in ---
function showLogin() {
  $("#app").hidden = true;
  $("#login").hidden = false;
  stopStreams();
}
$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("POST", "session", { token: $("#token").value });
    $("#token").value = "";
    $("#login-error").textContent = "";
    boot();
  } catch (err) {
    $("#login-error").textContent = err.message;
  }
});
$("#signout").addEventListener("click", async () => {
  await api("DELETE", "session").catch(() => {});
  showLogin();
});

async function boot() {
  const s = await api("GET", "session");
  Object.assign(state, { role: s.role, tokens: s.tokens, node: s.node });
  $("#where").textContent = "node " + s.node;
  $("#signout").hidden = !s.tokens;
  if (!s.role) return showLogin();
  $("#who").textContent = s.role;
  $("#login").hidden = true;
  $("#app").hidden = false;
  renderSpawnForm();
  await Promise.all([loadNodes(), loadProcesses(), loadDefinitions()]);
  startLive();
  followEvents();
}

// --- nodes ---
async function loadNodes() {
  try {
    state.nodes = await api("GET", "nodes");
    renderNodes();
  } catch (err) { say("nodes: " + err.message, true); }
}
function renderNodes() {
  const now = Date.now();
  $("#nodes tbody").innerHTML = state.nodes.map((n) => {
    const labels = Object.entries(n.labels || {}).map(([k, v]) => k + "=" + v).join(",") || "-";
    const host = n.host && !n.gone;
    return `<tr data-node="${esc(n.id)}" class="${n.gone ? "gone" : ""}"><td>${esc(n.id)}</td>` +
      `<td class="state">${n.gone ? "gone" : "alive"}</td><td>${esc(labels)}</td><td>${esc(n.version)}</td>` +
      `<td class="num">${n.gone ? "-" : duration(now - Date.parse(n.startedAt))}</td><td class="num">${n.processes}</td>` +
      `<td class="num">${n.running}</td><td class="num">${host ? n.host.cpuPercent.toFixed(1) + "%" : "-"}</td>` +
      `<td class="num">${host ? human(n.host.memUsedBytes) + " / " + human(n.host.memTotalBytes) : "-"}</td>` +
      `<td class="num">${n.dropped}</td></tr>`;
  }).join("");
}

// --- processes ---
async function loadProcesses() {
  try {
    const res = await api("GET", "processes" + (state.ended ? "?all=1" : ""));
    const procs = new Map();
    for (const p of res.processes) {
      const old = state.procs.get(p.id);
      if (old && old.live && !p.stats) p.live = old.live; // keep what the stream said
      procs.set(p.id, p);
    }
    state.procs = procs;
    if (res.missing && res.missing.length) say("not answering: " + res.missing.join(", "), true);
    else say("");
    render();
  } catch (err) { say("processes: " + err.message, true); }
}
function cpuOf(p) { const s = p.live || p.stats; return s && !finished(p) ? s.cpu.percent : null; }
function memOf(p) { const s = p.live || p.stats; return s && !finished(p) ? s.memory.rss : null; }
function finished(p) { return p.status === "stopped" || p.status === "crashed"; }
function uptimeOf(p, now) {
  const end = p.endedAt ? Date.parse(p.endedAt) : now;
  return end - Date.parse(p.startedAt);
}
const sorters = {
  status: (p) => p.status, name: (p) => p.name, id: (p) => p.id, node: (p) => p.node,
  cpu: (p) => cpuOf(p) ?? -1, mem: (p) => memOf(p) ?? -1, uptime: (p) => uptimeOf(p, 0) * -1, restarts: (p) => p.restarts,
};
function visible() {
  const f = state.filter.toLowerCase();
  const out = [];
  for (const p of state.procs.values()) {
    if (state.status && p.status !== state.status) continue;
    if (f && !(p.id + " " + p.name + " " + p.node + " " + p.status + " " + (p.instance || "")).toLowerCase().includes(f)) continue;
    out.push(p);
  }
  const key = sorters[state.sort.key], dir = state.sort.asc ? 1 : -1;
  out.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * dir || (a.id < b.id ? -1 : 1); });
  return out;
}
function render() { later("render", renderNow, 100); }
// Rows are kept by process id and changed cell by cell, so that a button
// stays the same element while stats stream in (a click is never lost to
// a redraw), and 1,000 rows cost little.
const rowsById = new Map();
function cellsOf(p, now, operator) {
  const cpu = cpuOf(p), mem = memOf(p), st = p.stale && !finished(p) ? "stale" : p.status;
  let actions = `<button class="show" data-id="${esc(p.id)}">logs</button>`;
  if (operator && !finished(p) && p.status !== "unknown") {
    actions += ` <button class="stop" data-id="${esc(p.id)}">stop</button> <button class="restart" data-id="${esc(p.id)}">restart</button>`;
  }
  return [
    ["st-" + st, st + (p.restartPending ? " (restarting)" : "")], ["", p.instance || p.name], ["id", p.id], ["", p.node],
    ["num", cpu == null ? "-" : cpu.toFixed(1)], ["num", human(mem)], ["num", duration(uptimeOf(p, now))],
    ["num", String(p.restarts)], ["actions", actions],
  ];
}
function renderNow() {
  const now = Date.now(), operator = state.role === "operator";
  const rows = visible(), tbody = $("#processes tbody"), seen = new Set();
  $("#count").textContent = rows.length + " of " + state.procs.size;
  let prev = null;
  for (const p of rows) {
    let tr = rowsById.get(p.id);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.id = p.id;
      for (let i = 0; i < 9; i++) tr.appendChild(document.createElement("td"));
      rowsById.set(p.id, tr);
    }
    cellsOf(p, now, operator).forEach(([cls, content], i) => {
      const td = tr.children[i];
      if (td.className !== cls) td.className = cls;
      if (cls === "actions") {
        if (td.dataset.html !== content) { td.innerHTML = content; td.dataset.html = content; }
      } else if (td.textContent !== content) td.textContent = content;
    });
    tr.classList.toggle("selected", p.id === state.selected);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
    seen.add(p.id);
  }
  for (const [id, tr] of rowsById) if (!seen.has(id)) { tr.remove(); rowsById.delete(id); }
  if (rows.length && !performance.getEntriesByName("corral-processes").length) performance.mark("corral-processes"); // first paint of the table
  for (const th of document.querySelectorAll("#processes th[data-sort]")) {
    th.classList.toggle("sorted", th.dataset.sort === state.sort.key);
    th.classList.toggle("asc", state.sort.asc);
  }
}
$("#processes thead").addEventListener("click", (e) => {
  const key = e.target.dataset.sort;
  if (!key) return;
  state.sort = { key, asc: state.sort.key === key ? !state.sort.asc : ["name", "id", "node", "status"].includes(key) };
  renderNow();
});
$("#filter").addEventListener("input", (e) => { state.filter = e.target.value; render(); });
$("#status-filter").addEventListener("change", (e) => {
  state.status = e.target.value;
  if (["stopped", "crashed"].includes(state.status) && !state.ended) { state.ended = true; $("#show-ended").checked = true; loadProcesses(); }
  render();
});
$("#show-ended").addEventListener("change", (e) => { state.ended = e.target.checked; loadProcesses(); });
$("#processes tbody").addEventListener("click", async (e) => {
  const id = e.target.dataset.id;
  if (!id) return;
  if (e.target.classList.contains("show")) return select(id);
  const verb = e.target.classList.contains("stop") ? "stop" : e.target.classList.contains("restart") ? "restart" : "";
  if (!verb) return;
  e.target.disabled = true;
  say(verb + " " + id + "…");
  try {
    const p = await api("POST", "processes/" + id + "/" + verb);
    say(verb + " " + id + ": " + p.status + (verb === "restart" ? " as " + p.id : ""));
  } catch (err) { say(err.message, true); }
  loadProcesses();
});

// --- the live stream: lifecycle and stats ---
function startLive() {
  if (state.live) state.live.close();
  const url = "/api/v1/events?" + [...lifecycle, "process.stats"].map((s) => "subject=" + encodeURIComponent(s)).join("&");
  const es = new EventSource(url);
  state.live = es;
  for (const s of lifecycle) es.addEventListener(s, () => later("refresh", () => { loadProcesses(); loadNodes(); }, 300));
  es.addEventListener("process.stats", (e) => {
    const m = JSON.parse(e.data), p = state.procs.get(m.processId);
    if (!p || (m.source !== "node" && p.live && p.live.source === "node")) return;
    p.live = { ...m.stats, source: m.source };
    let s = state.series.get(m.processId);
    if (!s) state.series.set(m.processId, s = { cpu: [], mem: [] });
    s.cpu.push(m.stats.cpu.percent); s.mem.push(m.stats.memory.rss / 1e6);
    if (s.cpu.length > SERIES) { s.cpu.shift(); s.mem.shift(); }
    if (m.processId === state.selected) later("charts", drawCharts, 200);
    render();
  });
  es.onerror = () => say("event stream interrupted: reconnecting…", true);
  // Open means subscribed: a fresh look covers what happened before.
  es.onopen = () => { say(""); loadProcesses(); loadNodes(); };
}
function stopStreams() {
  for (const k of ["live", "logs"]) if (state[k]) { state[k].close(); state[k] = null; }
  if (state.events) { state.events.abort(); state.events = null; }
}

// --- one process: charts and logs ---
function select(id) {
  state.selected = id;
  $("#detail").hidden = false;
  $("#detail-id").textContent = id;
  drawCharts();
  followLogs(id);
  renderNow();
}
$("#detail-close").addEventListener("click", () => {
  state.selected = null;
  $("#detail").hidden = true;
  if (state.logs) { state.logs.close(); state.logs = null; }
  renderNow();
});
function drawCharts() {
  const s = state.series.get(state.selected) || { cpu: [], mem: [] };
  chart($("#cpu-chart"), s.cpu, "#2856c8");
  chart($("#mem-chart"), s.mem, "#1b7f3b");
}
function chart(canvas, values, color) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pad = 18;
  g.clearRect(0, 0, w, h);
  g.font = "11px system-ui"; g.fillStyle = "#6b7385";
  if (!values.length) { g.fillText("waiting for stats…", pad, h / 2); return; }
  const max = Math.max(1, ...values) * 1.1;
  g.fillText(max.toFixed(1), 2, 12); g.fillText("0", 2, h - 4);
  g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
  values.forEach((v, i) => {
    const x = pad + (w - pad - 4) * ((SERIES - values.length + i) / (SERIES - 1)); // the newest at the right
    const y = h - 6 - (h - 12) * (v / max);
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
  g.fillStyle = color; g.fillText(values[values.length - 1].toFixed(1), w - 50, 12);
}
function followLogs(id) {
  if (state.logs) state.logs.close();
  const pre = $("#logs");
  pre.textContent = "";
  $("#logs-state").textContent = "following";
  const es = new EventSource("/api/v1/processes/" + encodeURIComponent(id) + "/logs?follow=1&lines=200");
  state.logs = es;
  let lines = [];
  es.onopen = () => { lines = []; }; // a reconnection sends the tail again
  es.addEventListener("log", (e) => {
    lines.push(...e.data.split("\n"));
    if (lines.length > 2000) lines = lines.slice(-2000);
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = lines.join("\n");
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  });
  const done = (what) => (e) => {
    let msg = what;
    try { const d = JSON.parse(e.data); msg += ": " + (d.error || d.status); } catch { /* a connection error */ }
    if (what === "ended" || e.data) { es.close(); $("#logs-state").textContent = msg; }
  };
  es.addEventListener("end", done("ended"));
  es.addEventListener("error", done("stopped"));
}

// --- the event stream, any subject ---
// EventSource cannot listen to event names it does not know in advance
// (every subject is one), so this reads the stream with fetch, resuming
// after the last id as EventSource would.
async function followEvents() {
  if (state.events) state.events.abort();
  const ctl = new AbortController();
  state.events = ctl;
  const subject = $("#events-subject").value.trim() || "process.>";
  const list = $("#events");
  list.innerHTML = "";
  let lastId = "", pending = [];
  const flush = () => {
    const quiet = $("#events-quiet").checked;
    const items = pending.filter((e) => !quiet || !(e.event === "process.heartbeat" || e.event.endsWith(".stats")));
    pending = [];
    if (!items.length) return;
    const at = esc(new Date().toLocaleTimeString());
    const html = items.slice(-200).reverse() // newest first
      .map((e) => `<li><time>${at}</time><span class="subject">${esc(e.event)}</span>${esc(e.data)}</li>`).join("");
    list.insertAdjacentHTML("afterbegin", html);
    while (list.children.length > 200) list.lastChild.remove();
  };
  while (!ctl.signal.aborted) {
    try {
      const headers = lastId ? { "Last-Event-ID": lastId } : {};
      const res = await fetch("/api/v1/events?subject=" + encodeURIComponent(subject), { headers, signal: ctl.signal, credentials: "same-origin" });
      if (!res.ok) {
        const err = await res.json().catch(() => ({ error: res.statusText }));
        say("events: " + err.error, true);
        if (res.status < 500) return;
      } else {
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "", ev = { event: "message", data: [] };
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + (buf.startsWith("\r\n", i) ? 2 : 1));
            if (line === "") {
              if (ev.data.length) pending.push({ event: ev.event, data: ev.data.join("\n") });
              ev = { event: "message", data: [] };
              later("events", flush, 250);
            } else if (!line.startsWith(":")) {
              const c = line.indexOf(":"), field = c < 0 ? line : line.slice(0, c);
              const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
              if (field === "data") ev.data.push(val);
              else if (field === "event") ev.event = val;
              else if (field === "id") lastId = val;
            }
          }
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
$("#events-form").addEventListener("submit", (e) => { e.preventDefault(); followEvents(); });

// --- spawning (operators) ---
async function loadDefinitions() {
  try {
    state.defs = await api("GET", "definitions");
    renderSpawnForm();
  } catch (err) { say("definitions: " + err.message, true); }
}
function renderSpawnForm() {
  const sec = $("#spawn-section");
  if (state.role !== "operator") { sec.hidden = true; sec.innerHTML = ""; return; }
  const byName = new Map();
  for (const r of state.defs) for (const d of r.definitions) {
    const e = byName.get(d.name) || { def: d, nodes: [] };
    e.nodes.push(r.node);
    byName.set(d.name, e);
  }
  const names = [...byName.keys()].sort();
  sec.hidden = false;
  sec.innerHTML = `<h2>Spawn</h2><form id="spawn-form">
    <label for="spawn-name">Definition</label><select id="spawn-name">${names.map((n) => `<option>${esc(n)}</option>`).join("")}</select>
    <span></span><span class="about" id="spawn-about"></span>
    <label for="spawn-node">Where</label><select id="spawn-node"><option value="">any node that defines it</option></select>
    <label for="spawn-labels">Labels</label><input id="spawn-labels" placeholder="zone=eu-1,gpu=yes (instead of a node)">
    <label for="spawn-meta">Metadata</label><textarea id="spawn-meta" placeholder='{"inputPath": "in.mp4"}'></textarea>
    <label for="spawn-env">Environment</label><textarea id="spawn-env" placeholder="KEY=value, one per line"></textarea>
    <span></span><span><button type="submit">Spawn</button> <span id="spawn-result"></span></span></form>`;
  const about = () => {
    const e = byName.get($("#spawn-name").value);
    if (!e) return;
    const d = e.def, events = Object.keys(d.events || {});
    $("#spawn-about").textContent = [d.command + " " + (d.args || []).join(" "),
      events.length ? "events: " + events.join(", ") : "any event",
      d.spawnEnv && d.spawnEnv.length ? "env a spawn may set: " + d.spawnEnv.join(", ") : "no env may be set",
      "nodes: " + e.nodes.join(", ")].join(" · ");
    $("#spawn-node").innerHTML = `<option value="">any node that defines it</option>` + e.nodes.map((n) => `<option>${esc(n)}</option>`).join("");
  };
  $("#spawn-name").addEventListener("change", about);
  about();
  $("#spawn-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#spawn-result");
    try {
      const req = { name: $("#spawn-name").value };
      const node = $("#spawn-node").value, labels = $("#spawn-labels").value.trim();
      const meta = $("#spawn-meta").value.trim(), env = $("#spawn-env").value.trim();
      if (node) req.node = node;
      if (labels) req.labels = Object.fromEntries(labels.split(",").map((kv) => kv.trim().split("=")));
      if (meta) req.metadata = JSON.parse(meta);
      if (env) req.env = Object.fromEntries(env.split("\n").map((l) => { const i = l.indexOf("="); return [l.slice(0, i).trim(), l.slice(i + 1)]; }));
      const p = await api("POST", "processes", req);
      out.className = ""; out.textContent = "spawned " + p.id + " on " + p.node;
      loadProcesses();
    } catch (err) { out.className = "error"; out.textContent = err.message; }
  });
}

// Uptimes move and nodes come and go: a fresh look every 5 s.
setInterval(() => { if (!$("#app").hidden) { loadNodes(); loadProcesses(); } }, 5000);
boot().catch((err) => say(err.message, true));
