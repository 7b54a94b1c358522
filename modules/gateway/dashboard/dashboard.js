// The hive's live dashboard: one stream of telemetry (fetch, read as it
// comes: EventSource cannot send a token), opened with the hive's history
// (history=all: the events it keeps, a minute at 1 Hz) so the charts are
// full at load, then live, resumed with Last-Event-ID after a drop. A
// hive with a token asks for it: it is kept in this tab's session
// storage only, sent as a header, never in a URL. A host
// summary (CPU, memory, each GPU), the Queen and hub links from /metrics,
// and a row per worker. No library, no build step: it must work offline
// from the hive itself, under a CSP that allows only its own origin.
"use strict";

const WINDOW_MS = 5 * 60 * 1000;
const $ = id => document.getElementById(id);
const host = { cpu: [], ram: [], tps: [] }; // [{t, v}]
const gpuHist = new Map();                 // GPU index -> [{t, util, vram}]
const workerHist = new Map();              // pid/instance -> [{t, cpu, gpu}]
let reconnects = 0, events = 0, lastEvent = 0, latest = null, pending = false, lastID = "";
const TOKEN_KEY = "hive.token";

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
function setState(cls, text) { $("state").className = "state " + cls; $("state").textContent = text; }
function fmtMiB(mib) { return mib >= 1024 ? (mib / 1024).toFixed(1) + " GiB" : Math.round(mib) + " MiB"; }
function fmtRate(mbs) { return mbs.toFixed(2) + " MB/s"; }
function fmtUptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m ? m + "m " + (s % 60) + "s" : s + "s";
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function push(list, p, now) {
  list.push(p);
  while (list.length && now - list[0].t > WINDOW_MS) list.shift();
}

// span is the charts' time axis: the shortest of 30 s, 1, 2 and 5
// minutes that holds what the hive has shown so far, so a page opened on
// a minute of history is not a sliver at the edge of five minutes.
function span(now) {
  const oldest = host.cpu.length ? host.cpu[0].t : now;
  return [30e3, 60e3, 120e3, WINDOW_MS].find(s => now - oldest <= s) || WINDOW_MS;
}
function ago(ms) { return ms >= 120e3 ? "-" + ms / 60e3 + "m" : "-" + ms / 1e3 + "s"; }

// chart draws lines of series ([{pts, key, color}]) over the span before
// now, with a y axis from 0 to max labelled by fmt and a time axis. small:
// a table cell's chart, max label only.
function chart(canvas, series, max, fmt, now, small) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 200, h = canvas.clientHeight || 40;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = css("--muted");
  ctx.strokeStyle = css("--line");
  ctx.lineWidth = 1;
  const win = span(now);
  const left = small ? 2 : 44, right = small ? 2 : 8, top = small ? 10 : 6, bottom = small ? 2 : 16;
  const pw = w - left - right, ph = h - top - bottom;
  const x = t => left + pw - (now - t) / win * pw, y = v => top + ph - Math.min(v, max) / max * ph;
  const ticks = small ? [max] : [0, max / 2, max];
  ctx.textAlign = small ? "left" : "right";
  for (const v of ticks) {
    ctx.beginPath(); ctx.moveTo(left, y(v) + .5); ctx.lineTo(left + pw, y(v) + .5); ctx.stroke();
    ctx.fillText(fmt(v), small ? left : left - 4, small ? top - 1 : y(v) + 3);
  }
  if (!small) {
    for (let i = 0; i <= 5; i++) {
      ctx.textAlign = i === 0 ? "right" : i === 5 ? "left" : "center";
      ctx.fillText(i ? ago(win / 5 * i) : "now", x(now - win / 5 * i), h - 3);
    }
  }
  let oldest = Infinity;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.pts.forEach((p, i) => { i ? ctx.lineTo(x(p.t), y(p[s.key])) : ctx.moveTo(x(p.t), y(p[s.key])); });
    ctx.stroke();
    if (s.pts.length) oldest = Math.min(oldest, s.pts[0].t);
  }
  // For tests and curious readers: what the chart holds.
  canvas.dataset.points = series.reduce((n, s) => n + s.pts.length, 0);
  canvas.dataset.oldest = isFinite(oldest) ? oldest : "";
  canvas.dataset.max = max;
}
const pct = v => Math.round(v) + " %";
const gib = v => v ? (v / 1024).toFixed(v >= 10240 ? 0 : 1) + " GiB" : "0";

// record files one event into the histories, by the hive's own clock.
function record(ev) {
  const t = Date.parse(ev.timestamp) || Date.now();
  // A fresh connection asks for the history again: what is drawn already
  // is not drawn twice.
  if (latest && latest.hive_id === ev.hive_id && t <= Date.parse(latest.timestamp)) return;
  const node = ev.node || {};
  if (node.ram_total_mb) {
    push(host.cpu, { t, v: node.cpu_pct }, t);
    push(host.ram, { t, v: node.ram_used_mb }, t);
  }
  for (const g of node.gpus || []) {
    if (!gpuHist.has(g.index)) gpuHist.set(g.index, []);
    push(gpuHist.get(g.index), { t, util: g.util_pct, vram: g.vram_total_mb ? g.vram_used_mb / g.vram_total_mb * 100 : 0 }, t);
  }
  // Tokens/s of every engine that says (null: none does).
  const tps = ev.workers.reduce((s, w) => w.load && w.load.gen_tps !== undefined ? (s || 0) + w.load.gen_tps : s, null);
  if (tps !== null) push(host.tps, { t, v: tps }, t);
  const seen = new Set();
  for (const w of ev.workers) {
    const key = w.pid + "/" + w.instance;
    seen.add(key);
    if (!workerHist.has(key)) workerHist.set(key, []);
    push(workerHist.get(key), { t, cpu: w.cpu_pct, gpu: w.gpu_util_pct }, t);
  }
  for (const key of workerHist.keys()) if (!seen.has(key)) workerHist.delete(key);
  latest = ev;
}

function renderHost(ev, now) {
  const node = ev.node || {}, h = ev.hive_info.health_status;
  $("health").className = "health " + h.status;
  $("health").textContent = "health: " + h.status + (h.reason ? " — " + h.reason : "") + (h.action && h.action !== "none" ? " (action: " + h.action + ")" : "");
  if (node.ram_total_mb) {
    $("host-cpu").textContent = node.cpu_pct.toFixed(0) + " %";
    $("host-ram").textContent = fmtMiB(node.ram_used_mb) + " of " + fmtMiB(node.ram_total_mb);
    chart($("chart-cpu"), [{ pts: host.cpu, key: "v", color: css("--cpu") }], 100, pct, now);
    chart($("chart-ram"), [{ pts: host.ram, key: "v", color: css("--ram") }], node.ram_total_mb, gib, now);
  }
  const last = host.tps.length ? host.tps[host.tps.length - 1] : null;
  $("host-tps").textContent = last && now - last.t < 5e3 ? last.v.toFixed(0) : "—";
  chart($("chart-tps"), [{ pts: host.tps, key: "v", color: css("--gpu") }], Math.max(10, ...host.tps.map(p => p.v)), n => n.toFixed(0), now);
  const box = $("gpus");
  box.replaceChildren();
  for (const g of node.gpus || []) {
    const card = el("div", "card gpu " + g.health.status);
    const title = el("h2", "", "GPU " + g.index + " ");
    title.appendChild(el("span", "sub", (g.name || "") + " "));
    title.appendChild(el("span", "key gpu", "util"));
    title.appendChild(document.createTextNode(" "));
    title.appendChild(el("span", "key ram", "memory"));
    title.title = g.uuid;
    card.appendChild(title);
    card.appendChild(el("div", "big", g.util_pct.toFixed(0) + " %"));
    const facts = el("dl", "facts");
    const fact = (k, v) => { facts.appendChild(el("dt", "", k)); facts.appendChild(el("dd", "", v)); };
    fact("memory", fmtMiB(g.vram_used_mb) + " of " + fmtMiB(g.vram_total_mb) +
      (g.vram_reserved_mb === undefined ? "" : " (" + fmtMiB(g.vram_reserved_mb) + " reserved)"));
    if (g.vram_free_mb !== undefined) fact("free", fmtMiB(g.vram_free_mb));
    // GPM (Hopper and newer): what "util" cannot say; a one-thread kernel
    // is 100 % util and 1 % SM active.
    const gpm = [["SM active", g.sm_active_pct], ["occupancy", g.sm_occupancy_pct],
      ["tensor", g.tensor_active_pct], ["DRAM bandwidth", g.dram_bw_pct]];
    for (const [k, v] of gpm) if (v !== undefined) fact(k, v.toFixed(1) + " %");
    if (g.unattributed_pct !== undefined) fact("unattributed", g.unattributed_pct.toFixed(0) + " %");
    fact("temperature", g.temp_c === undefined ? "—" : g.temp_c + " °C");
    fact("power", g.power_w === undefined ? "—" : g.power_w.toFixed(0) + " of " + g.power_limit_w.toFixed(0) + " W");
    if ((g.throttle || []).length) fact("throttled", g.throttle.join(", "));
    fact("health", g.health.status + (g.health.reason ? ": " + g.health.reason : "") + (g.health.action && g.health.action !== "none" ? " (action: " + g.health.action + ")" : ""));
    card.appendChild(facts);
    const c = el("canvas");
    c.setAttribute("aria-label", "GPU " + g.index + " utilisation and memory, % , last 5 minutes");
    card.appendChild(c);
    box.appendChild(card);
    chart(c, [{ pts: gpuHist.get(g.index) || [], key: "util", color: css("--gpu") },
      { pts: gpuHist.get(g.index) || [], key: "vram", color: css("--ram") }], 100, pct, now);
  }
  if (!box.children.length) box.appendChild(el("p", "empty", "no GPU readable"));
}

// gpuShare is a worker's GPU % as shown: the driver had no sample of it
// ("no sample": its 0 is no measurement), or it is the device's figure.
function gpuShare(w) {
  if (w.gpu_util_source === "no_sample") return "no sample";
  return (w.gpu_util_source === "device" ? "~" : "") + w.gpu_util_pct.toFixed(0) + " %";
}

// stateText is a worker's state as shown: how an exited worker ended.
function stateText(w) {
  const s = w.state || "—";
  if (w.exit && w.exit.signal) return s + " (" + w.exit.signal + ")";
  if (w.exit && w.exit.code !== undefined) return s + " (code " + w.exit.code + ")";
  return s;
}

function renderWorkers(ev, now) {
  const rows = $("rows");
  rows.replaceChildren();
  const workers = [...ev.workers].sort((a, b) => a.pid - b.pid);
  $("wcount").textContent = workers.length + (ev.workers_omitted ? " (+" + ev.workers_omitted + " not shown)" : "");
  const cell = (tr, label, text, cls) => {
    const td = el("td", cls || "", text);
    td.dataset.label = label;
    tr.appendChild(td);
    return td;
  };
  for (const w of workers) {
    const tr = el("tr");
    tr.dataset.pid = w.pid;
    cell(tr, "Model", w.model || "—", "model").title = w.model || "";
    cell(tr, "State", stateText(w), "wstate " + (w.state || ""));
    cell(tr, "Instance", w.group + "/" + w.instance, "inst").title = w.group + "/" + w.instance;
    cell(tr, "PID", String(w.pid), "n");
    cell(tr, "CPU % (of 1 core)", w.cpu_pct.toFixed(1), "n");
    cell(tr, "RSS", fmtMiB(w.rss_mb), "n");
    cell(tr, "Read", fmtRate(w.io_r_mb_s), "n");
    cell(tr, "Write", fmtRate(w.io_w_mb_s), "n");
    const onGPU = w.total_vram_mb > 0;
    cell(tr, "GPU %", onGPU ? gpuShare(w) : "no GPU", "n").title = w.gpu_util_source || "";
    cell(tr, "VRAM", onGPU ? fmtMiB(w.vram_mb) + " of " + fmtMiB(w.total_vram_mb) : "no GPU", "n");
    const l = w.load || {}, num = v => v === undefined ? "—" : String(v);
    cell(tr, "Queue", num(l.queue), "n").title = w.load ? "engine: " + w.load.engine : "no engine figures";
    cell(tr, "Running", num(l.running), "n");
    cell(tr, "KV", l.kv_used_ratio === undefined ? "—" : (l.kv_used_ratio * 100).toFixed(0) + " %", "n");
    cell(tr, "Tok/s", l.gen_tps === undefined ? "—" : l.gen_tps.toFixed(0), "n");
    cell(tr, "Uptime", fmtUptime(w.uptime_s), "n");
    const c = el("canvas", "spark");
    c.setAttribute("aria-label", "CPU % of one core and GPU %, last 5 minutes");
    cell(tr, "Recent", "").appendChild(c);
    rows.appendChild(tr);
    const pts = workerHist.get(w.pid + "/" + w.instance) || [];
    chart(c, [{ pts, key: "cpu", color: css("--cpu") }, { pts, key: "gpu", color: css("--gpu") }],
      Math.max(100, ...pts.map(p => Math.max(p.cpu, p.gpu))), pct, now, true);
  }
  if (!workers.length) {
    const tr = el("tr", "empty");
    cell(tr, "", "no workers on this hive").colSpan = 16;
    rows.appendChild(tr);
  }
}

// render draws the latest event once per frame: the history's backlog
// arrives as many events at once and is drawn once.
function render() {
  pending = false;
  const ev = latest;
  const now = Date.parse(ev.timestamp) || Date.now();
  $("hive").textContent = ev.hive_id;
  document.title = "hive " + ev.hive_id;
  $("meta").textContent = ev.hive_info.operational_status + " · v" + ev.hive_info.version;
  renderHost(ev, now);
  renderWorkers(ev, now);
}

// schedule asks for one render at the next frame, once there is an event.
function schedule() {
  if (latest && !pending) { pending = true; requestAnimationFrame(render); }
}

function footer() {
  const age = lastEvent ? Math.round((Date.now() - lastEvent) / 1000) + " s ago" : "never";
  $("foot").textContent = events + " event(s), last " + age + " · " + reconnects + " reconnect(s)";
}

// auth is the request headers: the token, if the operator gave one.
function auth() {
  const tok = sessionStorage.getItem(TOKEN_KEY);
  return tok ? { "Authorization": "Bearer " + tok } : {};
}

// needToken shows the token prompt: the hive answered 401.
function needToken(wrong) {
  setState("token", "token needed");
  $("auth").hidden = false;
  $("auth-why").textContent = wrong ? "The hive refused this token: enter the right one." :
    "This hive needs its API token (or its read token) to show telemetry.";
  $("health").textContent = "health: the hive needs a token to show it";
  $("token").focus();
}

$("auth").addEventListener("submit", e => {
  e.preventDefault();
  const tok = $("token").value.trim();
  if (!tok) return;
  sessionStorage.setItem(TOKEN_KEY, tok);
  $("token").value = "";
  $("auth").hidden = true;
  setState("connecting", "connecting");
  connect();
  links();
});

// links reads the Queen's and the hub's state from /metrics, which the
// same access rules guard as the stream.
const QUEEN = ["none (standalone)", "reaching", "connected"];
async function links() {
  let text = "";
  try {
    const r = await fetch("/metrics", { cache: "no-store", headers: auth() });
    if (r.ok) text = await r.text();
  } catch (e) { /* shown as unknown */ }
  const val = name => {
    const m = text.match(new RegExp("^" + name + "(?:\\{[^}]*\\})? (\\S+)$", "m"));
    return m ? Number(m[1]) : undefined;
  };
  const q = val("hive_queen_state"), hubOn = val("hive_hub_configured"), hubUp = val("hive_hub_connected");
  $("queen").textContent = "Queen: " + (q === undefined ? "unknown" : QUEEN[q] || "unknown");
  $("queen").className = "chip " + (q === 2 ? "up" : q === 1 ? "down" : "");
  const kept = val("hive_hub_backlog_messages") || 0, oldest = val("hive_hub_backlog_oldest_seconds") || 0;
  $("hub").textContent = "hub: " + hubState(hubOn, hubUp, kept, oldest);
  $("hub").className = "chip " + (hubOn ? (hubUp && !kept ? "up" : "down") : "");
}

// hubState is the hub link in words: while events wait for the hub's
// history, how far behind it is (kept while away, catching up once back).
function hubState(on, up, kept, oldest) {
  if (on === undefined) return "unknown";
  if (!on) return "not configured";
  const behind = oldest < 60 ? "under 1 min" : Math.round(oldest / 60) + " min";
  if (!up) return kept ? "disconnected (" + kept + " events kept, " + behind + ")" : "disconnected";
  return kept > 1 ? "catching up (" + behind + " behind)" : "connected";
}

// onEvent takes one SSE event.
function onEvent(name, data) {
  if (name !== "heartbeat") return;
  try { record(JSON.parse(data)); } catch (e) { return; }
  events++;
  lastEvent = Date.now();
  setState("live", "live");
  schedule();
  footer();
}

// readSSE parses an event stream as it arrives: blocks of lines, ended by
// a blank line; data lines joined; the id kept for the resume.
async function readSSE(body) {
  const reader = body.getReader(), dec = new TextDecoder();
  let buf = "", name = "message", data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + (buf.startsWith("\r\n", i) ? 2 : 1));
      if (line === "") {
        if (data.length) onEvent(name, data.join("\n"));
        name = "message"; data = [];
      } else if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
      else if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("id:")) lastID = line.slice(3).trim();
    }
  }
}

let connecting = false;
async function connect() {
  if (connecting) return;
  connecting = true;
  try {
    const headers = Object.assign({ "Accept": "text/event-stream" }, auth());
    if (lastID) headers["Last-Event-ID"] = lastID; // the header wins over the query
    const r = await fetch("/v1/heartbeats/stream?history=all", { headers, cache: "no-store" });
    if (r.status === 401) {
      connecting = false;
      needToken(!!sessionStorage.getItem(TOKEN_KEY));
      return; // the prompt reconnects
    }
    if (!r.ok) throw new Error("status " + r.status);
    setState("live", "live");
    await readSSE(r.body);
  } catch (e) { /* reconnect below */ }
  connecting = false;
  reconnects++;
  setState("connecting", "reconnecting");
  footer();
  setTimeout(connect, 2000);
}

connect();
links();
setInterval(footer, 1000);
setInterval(links, 5000);
window.addEventListener("resize", schedule);
