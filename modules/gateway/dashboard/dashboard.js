// The hive's live dashboard: one EventSource on the telemetry stream, a
// row per worker, and a chart of each worker's last five minutes. No
// library, no build step: it must work offline from the hive itself.
"use strict";

const WINDOW_MS = 5 * 60 * 1000;
const history = new Map(); // worker key -> [{t, cpu, gpu}]
const state = document.getElementById("state");
const rows = document.getElementById("rows");
let reconnects = 0, events = 0, lastEvent = 0, es = null;

function setState(cls, text) {
  state.className = "state " + cls;
  state.textContent = text;
}

function fmtBytes(mib) { return mib >= 1024 ? (mib / 1024).toFixed(1) + " GiB" : mib + " MiB"; }
function fmtRate(mbs) { return mbs.toFixed(2) + " MB/s"; }
function fmtUptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m ? m + "m " + (s % 60) + "s" : s + "s";
}

function cell(tr, label, text, numeric) {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.textContent = text;
  if (numeric) td.className = "n";
  tr.appendChild(td);
  return td;
}

function draw(canvas, points, now) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 180, h = canvas.clientHeight || 36;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const max = Math.max(100, ...points.map(p => Math.max(p.cpu, p.gpu)));
  for (const [key, color] of [["cpu", "--cpu"], ["gpu", "--gpu"]]) {
    ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue(color);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = w - (now - p.t) / WINDOW_MS * w, y = h - 2 - p[key] / max * (h - 4);
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.stroke();
  }
}

// renderNode shows the hive's health in words and a row per GPU; the node
// block is additive, so an older hive without it shows none.
function renderNode(ev) {
  const h = ev.hive_info.health_status;
  const banner = document.getElementById("health");
  banner.className = "health " + h.status;
  banner.textContent = "health: " + h.status + (h.reason ? " — " + h.reason : "");
  const body = document.getElementById("gpurows");
  body.replaceChildren();
  const gpus = (ev.node && ev.node.gpus) || [];
  for (const g of gpus) {
    const tr = document.createElement("tr");
    tr.className = "gpu " + g.health.status;
    cell(tr, "GPU", String(g.index)).title = g.uuid;
    cell(tr, "Name", g.name || "—");
    cell(tr, "Util %", g.util_pct.toFixed(0), true);
    cell(tr, "VRAM", fmtBytes(g.vram_used_mb) + " / " + fmtBytes(g.vram_total_mb), true);
    cell(tr, "Temp", g.temp_c === undefined ? "—" : g.temp_c + " °C", true);
    cell(tr, "Power", g.power_w === undefined ? "—" : g.power_w.toFixed(0) + " / " + g.power_limit_w.toFixed(0) + " W", true);
    cell(tr, "Throttle", (g.throttle || []).join(", ") || "—");
    cell(tr, "Health", g.health.status + (g.health.reason ? ": " + g.health.reason : ""));
    body.appendChild(tr);
  }
  if (!gpus.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    cell(tr, "", "no GPU readable").colSpan = 8;
    body.appendChild(tr);
  }
}

// stateText is a worker's state as shown: how an exited worker ended.
function stateText(w) {
  const s = w.state || "—";
  if (w.exit && w.exit.signal) return s + " (" + w.exit.signal + ")";
  if (w.exit && w.exit.code !== undefined) return s + " (code " + w.exit.code + ")";
  return s;
}

function render(ev) {
  const now = Date.now();
  renderNode(ev);
  document.getElementById("hive").textContent = ev.hive_id;
  document.title = "hive " + ev.hive_id;
  document.getElementById("meta").textContent =
    ev.hive_info.operational_status + " · v" + ev.hive_info.version + " · " + ev.workers.length + " worker(s)";
  const seen = new Set();
  rows.replaceChildren();
  const workers = [...ev.workers].sort((a, b) => a.pid - b.pid);
  for (const w of workers) {
    const key = w.pid + "/" + w.instance;
    seen.add(key);
    const pts = history.get(key) || [];
    pts.push({ t: now, cpu: w.cpu_pct, gpu: w.gpu_util_pct });
    while (pts.length && now - pts[0].t > WINDOW_MS) pts.shift();
    history.set(key, pts);
    const tr = document.createElement("tr");
    tr.dataset.pid = w.pid;
    const m = cell(tr, "Model", w.model || "—");
    m.className = "model";
    m.title = w.model || "";
    cell(tr, "Instance", w.group + "/" + w.instance);
    const st = cell(tr, "State", stateText(w));
    st.className = "state " + (w.state || "");
    cell(tr, "PID", String(w.pid), true);
    cell(tr, "CPU %", w.cpu_pct.toFixed(1), true);
    cell(tr, "RSS", fmtBytes(w.rss_mb), true);
    cell(tr, "Read", fmtRate(w.io_r_mb_s), true);
    cell(tr, "Write", fmtRate(w.io_w_mb_s), true);
    cell(tr, "GPU %", w.total_vram_mb ? w.gpu_util_pct.toFixed(0) : "—", true);
    cell(tr, "VRAM", w.total_vram_mb ? fmtBytes(w.vram_mb) + " / " + fmtBytes(w.total_vram_mb) : "—", true);
    cell(tr, "Uptime", fmtUptime(w.uptime_s), true);
    const canvas = document.createElement("canvas");
    cell(tr, "Last 5 min", "").appendChild(canvas);
    rows.appendChild(tr);
    draw(canvas, pts, now);
  }
  for (const key of history.keys()) if (!seen.has(key)) history.delete(key);
  if (!workers.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(tr, "", "no workers on this hive");
    td.colSpan = 12;
    rows.appendChild(tr);
  }
}

function footer() {
  const age = lastEvent ? Math.round((Date.now() - lastEvent) / 1000) + " s ago" : "never";
  document.getElementById("foot").textContent =
    events + " event(s), last " + age + " · " + reconnects + " reconnect(s)";
}

function connect() {
  // EventSource reconnects by itself, resuming with Last-Event-ID.
  es = new EventSource("/v1/heartbeats/stream");
  es.onopen = () => setState("live", "live");
  es.onerror = () => {
    if (es.readyState === EventSource.CONNECTING) {
      reconnects++;
      setState("connecting", "reconnecting");
    } else {
      // Closed for good (an HTTP error): start over after a pause.
      setState("down", "down");
      es.close();
      reconnects++;
      setTimeout(connect, 3000);
    }
    footer();
  };
  es.addEventListener("heartbeat", m => {
    try { render(JSON.parse(m.data)); } catch (e) { return; }
    events++;
    lastEvent = Date.now();
    setState("live", "live");
    footer();
  });
}

connect();
setInterval(footer, 1000);
