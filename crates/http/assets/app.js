// The Strom console: one page, routed by the URL's hash, drawn from the /api endpoints.
// Plain JavaScript, no build step; every figure comes from the cluster over Kafka's
// protocol (see console.rs).
"use strict";

const page = document.getElementById("page");
let settings = { actions_enabled: false };
let timer = null;      // the current page's refresh
let tail = null;       // the live tail's EventSource
const history = { topics: {}, groups: {} }; // figures over time, for sparklines and charts

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function bytes(n) {
  if (n == null) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

async function api(path, options) {
  const r = await fetch(path, options);
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function send(method, path, body) {
  return api(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

function table(id, headers, rows) {
  const head = headers.map(h => `<th class="${h.startsWith("#") ? "num" : ""}">${esc(h.replace(/^#/, ""))}</th>`).join("");
  return `<table id="${id}"><thead><tr>${head}</tr></thead><tbody>${rows.join("") || `<tr><td colspan="${headers.length}" class="muted">none</td></tr>`}</tbody></table>`;
}

function spark(values, w = 120, h = 24) {
  if (values.length < 2) return `<svg class="spark" width="${w}" height="${h}"></svg>`;
  const max = Math.max(...values, 1);
  const step = w / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`).join(" ");
  return `<svg class="spark" width="${w}" height="${h}"><polyline fill="none" stroke="#2456c9" stroke-width="1.5" points="${pts}"/></svg>`;
}

function remember(store, key, value, keep = 60) {
  const h = (store[key] = store[key] || []);
  h.push({ t: Date.now(), v: value });
  while (h.length > keep) h.shift();
  return h;
}

function showError(where, e) {
  const el = document.getElementById(where);
  if (el) el.innerHTML = `<div class="error">${esc(e.message || e)}</div>`;
}

// --- pages -----------------------------------------------------------------------------

async function cluster() {
  const g = generation;
  const c = await api("/api/cluster");
  if (g !== generation) return;
  const q = c.quorum || {};
  const brokers = c.brokers.map(b => `<tr data-broker="${b.id}" class="${b.state === "fenced" ? "bad" : ""}">
      <td>${b.id}${b.id === c.controller ? ' <span class="badge">controller</span>' : ""}</td><td>${esc(b.address)}</td>
      <td>${esc(b.rack || "–")}</td><td><span class="badge ${b.state === "active" ? "ok" : "bad"}">${b.state}</span></td>
      <td class="num">${b.leaders}</td><td class="num">${b.replicas}</td><td class="num">${bytes(b.disk_bytes)}</td></tr>`);
  const voters = (q.replicas || []).map(r => `<tr class="${r.lag > 0 ? "bad" : ""}"><td>${r.id}</td><td>${r.role}</td>
      <td class="num">${r.log_end_offset}</td><td class="num">${r.lag}</td><td class="num">${r.last_contact_ms < 0 ? "never" : r.last_contact_ms + " ms ago"}</td></tr>`);
  const bad = [...c.offline.map(p => ({ ...p, why: "offline" })), ...c.under_replicated.map(p => ({ ...p, why: "under-replicated" }))]
    .map(p => `<tr class="bad"><td><a href="#/topics/${encodeURIComponent(p.topic)}">${esc(p.topic)}</a></td><td class="num">${p.partition}</td>
      <td>${p.leader}</td><td>${esc(p.replicas.join(", "))}</td><td>${esc(p.isr.join(", "))}</td><td>${p.why}</td></tr>`);
  page.innerHTML = `<h1>Cluster <span class="muted">${esc(c.cluster_id)}</span></h1>
    <div class="cards">
      <div class="card">Controller<b id="controller">${c.controller}</b></div>
      <div class="card">Brokers<b id="broker-count">${c.brokers.length}</b></div>
      <div class="card">Quorum leader<b>${q.leader ?? "–"}</b><span class="muted">epoch ${q.epoch ?? "–"}</span></div>
      <div class="card">Under-replicated<b id="urp-count" class="${c.under_replicated.length ? "badge bad" : ""}">${c.under_replicated.length}</b></div>
      <div class="card">Offline<b id="offline-count">${c.offline.length}</b></div>
    </div>
    <h2>Brokers</h2>${table("brokers", ["Id", "Address", "Rack", "State", "#Leaders", "#Replicas", "#Disk"], brokers)}
    <h2>Metadata quorum</h2>${q.error ? `<div class="error">${esc(q.error)}</div>` : table("quorum", ["Node", "Role", "#Log end", "#Lag", "#Last contact"], voters)}
    <h2>Partitions needing attention</h2>${table("attention", ["Topic", "#Partition", "Leader", "Replicas", "ISR", "Why"], bad)}`;
}

async function topics() {
  const g = generation;
  const list = await api("/api/topics");
  if (g !== generation) return;
  const now = Date.now();
  const rows = list.map(t => {
    const h = remember(history.topics, t.name, t.end_offsets);
    const rates = h.slice(1).map((p, i) => Math.max(0, (p.v - h[i].v) / Math.max(0.001, (p.t - h[i].t) / 1000)));
    const rate = rates.length ? rates[rates.length - 1] : 0;
    return `<tr data-topic="${esc(t.name)}" class="${t.under_replicated ? "bad" : ""}">
      <td><a href="#/topics/${encodeURIComponent(t.name)}">${esc(t.name)}</a>${t.internal ? ' <span class="badge">internal</span>' : ""}</td>
      <td class="num">${t.partitions}</td><td class="num">${t.replication_factor}</td><td class="num">${bytes(t.size_bytes)}</td>
      <td class="num">${t.end_offsets}</td><td>${spark(rates)} <span class="muted">${rate.toFixed(1)}/s</span></td>
      <td class="num">${t.under_replicated}</td></tr>`;
  });
  const form = settings.actions_enabled ? `<h2>Create a topic</h2>
    <form class="inline" id="create-topic">
      <label>Name<input name="name" required></label>
      <label>Partitions<input name="partitions" type="number" value="1"></label>
      <label>Replication factor<input name="replication_factor" type="number" value="1"></label>
      <label>Configs (k=v, comma-separated)<input name="configs" placeholder="retention.ms=86400000"></label>
      <button>Create</button></form><div id="create-result"></div>` : "";
  page.innerHTML = `<h1>Topics <span class="muted">${list.length}</span></h1>
    ${table("topics", ["Topic", "#Partitions", "#Replication", "#Size", "#Records (end offsets)", "Message rate", "#Under-replicated"], rows)}${form}`;
  const f = document.getElementById("create-topic");
  if (f) f.onsubmit = async ev => {
    ev.preventDefault();
    const d = new FormData(f);
    const configs = {};
    for (const kv of String(d.get("configs") || "").split(",").map(s => s.trim()).filter(Boolean)) {
      const [k, ...v] = kv.split("=");
      configs[k.trim()] = v.join("=").trim();
    }
    try {
      await send("POST", "/api/topics", { name: d.get("name"), partitions: Number(d.get("partitions")), replication_factor: Number(d.get("replication_factor")), configs });
      location.hash = "#/topics/" + encodeURIComponent(d.get("name"));
    } catch (e) { showError("create-result", e); }
  };
}

async function topic(name) {
  const g = generation;
  const t = await api("/api/topics/" + encodeURIComponent(name));
  if (g !== generation) return;
  const parts = t.partitions.map(p => `<tr data-partition="${p.partition}" class="${p.isr.length < p.replicas.length ? "bad" : ""}">
      <td class="num">${p.partition}</td><td>${p.leader}</td><td class="num">${p.leader_epoch}</td><td>${esc(p.replicas.join(", "))}</td>
      <td>${esc(p.isr.join(", "))}</td><td class="num">${p.start_offset ?? "–"}</td><td class="num">${p.end_offset ?? "–"}</td></tr>`);
  const edit = settings.actions_enabled;
  const configs = t.configs.map(c => `<tr data-config="${esc(c.name)}"><td>${esc(c.name)}</td>
      <td>${edit && !c.read_only ? `<input data-key="${esc(c.name)}" value="${esc(c.value ?? "")}">` : esc(c.value ?? "")}</td>
      <td class="muted">${c.source === 1 ? "topic" : c.source === 5 ? "default" : c.source}</td></tr>`);
  page.innerHTML = `<h1>Topic ${esc(t.name)}</h1>
    <div class="tabs"><a href="#/topics/${encodeURIComponent(name)}/messages">Messages</a></div>
    <h2>Partitions</h2>${table("partitions", ["#Partition", "Leader", "#Epoch", "Replicas", "ISR", "#Start offset", "#End offset"], parts)}
    ${edit ? `<form class="inline" id="add-partitions"><label>Partitions in all<input name="count" type="number" value="${t.partitions.length + 1}"></label>
      <button>Add partitions</button><button type="button" class="danger" id="delete-topic">Delete topic</button></form><div id="partitions-result"></div>` : ""}
    <h2>Configs</h2>${table("configs", ["Name", "Value", "Source"], configs)}
    ${edit ? `<p><button id="save-configs">Save configs</button></p><div id="configs-result"></div>` : ""}`;
  if (!edit) return;
  document.getElementById("add-partitions").onsubmit = async ev => {
    ev.preventDefault();
    try {
      await send("POST", `/api/topics/${encodeURIComponent(name)}/partitions`, { count: Number(new FormData(ev.target).get("count")) });
      route();
    } catch (e) { showError("partitions-result", e); }
  };
  document.getElementById("delete-topic").onclick = async () => {
    if (!confirm(`Delete topic ${name}?`)) return;
    try { await api(`/api/topics/${encodeURIComponent(name)}`, { method: "DELETE" }); location.hash = "#/topics"; }
    catch (e) { showError("partitions-result", e); }
  };
  document.getElementById("save-configs").onclick = async () => {
    const set = {};
    for (const input of document.querySelectorAll("#configs input[data-key]")) {
      const before = t.configs.find(c => c.name === input.dataset.key);
      if ((before.value ?? "") !== input.value) set[input.dataset.key] = input.value;
    }
    try {
      await send("POST", `/api/topics/${encodeURIComponent(name)}/configs`, { set });
      document.getElementById("configs-result").innerHTML = `<div class="notice">Saved ${Object.keys(set).length} change(s).</div>`;
    } catch (e) { showError("configs-result", e); }
  };
}

function renderValue(v, mode) {
  if (v == null) return '<span class="muted">null</span>';
  if (mode === "hex") return `<pre>${esc(v.hex)}</pre>`;
  if (mode !== "text" && v.json != null) return `<pre>${esc(JSON.stringify(v.json, null, 2))}</pre>`;
  return `<pre>${esc(v.text)}</pre>`;
}

function when(ms) {
  const d = new Date(ms);
  return isFinite(d) ? d.toISOString() : esc(ms);
}

function recordRow(r, mode) {
  const headers = r.headers.map(h => `${esc(h.key)}=${esc(h.value ?? "null")}`).join("<br>");
  return `<tr data-offset="${r.offset}" data-partition="${r.partition}"><td class="num">${r.partition}</td><td class="num">${r.offset}</td>
    <td>${when(r.timestamp)}</td><td class="key">${renderValue(r.key, mode)}</td>
    <td class="value">${renderValue(r.value, mode)}</td><td>${headers}</td></tr>`;
}

async function messages(name) {
  const g = generation;
  const t = await api("/api/topics/" + encodeURIComponent(name));
  if (g !== generation) return;
  const options = t.partitions.map(p => `<option value="${p.partition}">${p.partition}</option>`).join("");
  page.innerHTML = `<h1>Messages of <a href="#/topics/${encodeURIComponent(name)}">${esc(name)}</a></h1>
    <form class="inline" id="browse">
      <label>Partition<select name="partition">${options}</select></label>
      <label>From<select name="from_kind"><option value="beginning">beginning</option><option value="end">the end</option>
        <option value="offset">offset</option><option value="time">timestamp</option></select></label>
      <label>Offset or time<input name="from_value" placeholder="42 or 2026-12-01T10:00:00Z"></label>
      <label>Key contains<input name="key"></label><label>Value contains<input name="contains"></label>
      <label>Show as<select name="mode"><option value="auto">JSON or text</option><option value="text">text</option><option value="hex">hex</option></select></label>
      <button>Browse</button><button type="button" class="secondary" id="tail-toggle">Live tail</button>
    </form><div id="browse-result"></div><p id="tail-status" class="muted"></p>
    ${table("messages", ["#Partition", "#Offset", "Timestamp", "Key", "Value", "Headers"], [])}
    ${settings.actions_enabled ? `<h2>Produce a test record</h2><form class="inline" id="produce">
      <label>Partition<select name="partition"><option value="">any</option>${options}</select></label>
      <label>Key<input name="key"></label><label>Value<textarea name="value" rows="1" cols="40"></textarea></label>
      <label>Header (k=v)<input name="header"></label><button>Produce</button></form><div id="produce-result"></div>` : ""}`;
  const form = document.getElementById("browse");
  const body = () => document.querySelector("#messages tbody");
  const params = () => {
    const d = new FormData(form);
    let from = d.get("from_kind");
    const v = String(d.get("from_value") || "").trim();
    if (from === "offset") from = v || "0";
    if (from === "time") from = "time:" + (/^\d+$/.test(v) ? v : Date.parse(v));
    return { d, q: new URLSearchParams({ partition: d.get("partition"), from, key: d.get("key"), contains: d.get("contains") }) };
  };
  form.onsubmit = async ev => {
    ev.preventDefault();
    const { d, q } = params();
    document.getElementById("browse-result").innerHTML = "";
    try {
      const r = await api(`/api/topics/${encodeURIComponent(name)}/messages?${q}`);
      body().innerHTML = r.records.map(x => recordRow(x, d.get("mode"))).join("") || `<tr><td colspan="6" class="muted">no records</td></tr>`;
      document.getElementById("browse-result").innerHTML = `<p class="muted">${r.records.length} record(s); partition end offset ${r.end_offset}</p>`;
    } catch (e) { showError("browse-result", e); }
  };
  document.getElementById("tail-toggle").onclick = () => {
    const status = document.getElementById("tail-status");
    if (tail) { tail.close(); tail = null; status.textContent = "Live tail stopped."; return; }
    const { d, q } = params();
    body().innerHTML = "";
    tail = new EventSource(`/api/topics/${encodeURIComponent(name)}/tail?${q}`);
    tail.addEventListener("ready", () => { status.textContent = `Following partition ${d.get("partition")}…`; status.dataset.state = "following"; });
    tail.addEventListener("record", ev => body().insertAdjacentHTML("afterbegin", recordRow(JSON.parse(ev.data), d.get("mode"))));
    tail.onerror = () => {
      status.textContent = tail && tail.readyState === EventSource.CLOSED
        ? "Live tail refused or ended." : "Live tail: connection lost, retrying…";
    };
  };
  const p = document.getElementById("produce");
  if (p) p.onsubmit = async ev => {
    ev.preventDefault();
    const d = new FormData(p);
    const headers = {};
    const h = String(d.get("header") || "");
    if (h.includes("=")) headers[h.split("=")[0]] = h.split("=").slice(1).join("=");
    try {
      const r = await send("POST", `/api/topics/${encodeURIComponent(name)}/messages`, {
        partition: d.get("partition") === "" ? null : Number(d.get("partition")), key: d.get("key") || null, value: d.get("value"), headers });
      document.getElementById("produce-result").innerHTML = `<div class="notice">Written to partition ${r.partition} at offset ${r.offset}.</div>`;
    } catch (e) { showError("produce-result", e); }
  };
}

async function groups() {
  const g = generation;
  const list = await api("/api/groups");
  if (g !== generation) return;
  const rows = list.map(g => `<tr data-group="${esc(g.group_id)}"><td><a href="#/groups/${encodeURIComponent(g.group_id)}">${esc(g.group_id)}</a></td>
      <td><span class="badge ${g.state === "Stable" ? "ok" : g.state === "Dead" ? "bad" : "warn"}">${esc(g.state)}</span></td>
      <td>${esc(g.type)}</td><td class="num">${g.members}</td><td class="num lag">${g.lag}</td></tr>`);
  page.innerHTML = `<h1>Consumer groups <span class="muted">${list.length}</span></h1>${table("groups", ["Group", "State", "Type", "#Members", "#Total lag"], rows)}`;
}

function lagChart(points, w = 600, h = 120) {
  if (points.length < 2) return `<svg id="lag-chart" width="${w}" height="${h}"><text x="8" y="20" fill="#687086">collecting…</text></svg>`;
  const max = Math.max(...points.map(p => p.v), 1);
  const t0 = points[0].t, span = Math.max(1, points[points.length - 1].t - t0);
  const pts = points.map(p => `${(((p.t - t0) / span) * (w - 40) + 35).toFixed(1)},${(h - 15 - (p.v / max) * (h - 30)).toFixed(1)}`).join(" ");
  return `<svg id="lag-chart" width="${w}" height="${h}" style="background:#fff;border:1px solid #dde1ea">
    <text x="4" y="14" font-size="11" fill="#687086">${max}</text><text x="4" y="${h - 15}" font-size="11" fill="#687086">0</text>
    <polyline fill="none" stroke="#2456c9" stroke-width="2" points="${pts}"/></svg>`;
}

async function group(id) {
  const gen = generation;
  const g = await api("/api/groups/" + encodeURIComponent(id));
  if (gen !== generation) return;
  const h = remember(history.groups, id, g.lag, 120);
  const members = g.members.map(m => `<tr><td>${esc(m.member_id)}</td><td>${esc(m.client_id)}</td><td>${esc(m.host)}</td><td>${esc(m.assignment.join(", "))}</td></tr>`);
  const offsets = g.offsets.map(o => `<tr data-tp="${esc(o.topic)}-${o.partition}"><td>${esc(o.topic)}</td><td class="num">${o.partition}</td>
      <td class="num">${o.committed}</td><td class="num">${o.end_offset}</td><td class="num lag">${o.lag}</td></tr>`);
  const topics = [...new Set(g.offsets.map(o => o.topic))].map(t => `<option>${esc(t)}</option>`).join("");
  page.innerHTML = `<h1>Group ${esc(g.group_id)} <span class="badge">${esc(g.state)}</span></h1>
    <div class="cards"><div class="card">Total lag<b id="group-lag">${g.lag}</b></div><div class="card">Members<b>${g.members.length}</b></div>
      <div class="card">Type<b>${esc(g.type)}</b><span class="muted">${esc(g.assignor || g.protocol_type)}</span></div></div>
    <h2>Lag over time</h2>${lagChart(h)}
    <h2>Members</h2>${table("members", ["Member", "Client id", "Host", "Assignment"], members)}
    <h2>Offsets</h2>${table("offsets", ["Topic", "#Partition", "#Committed", "#End offset", "#Lag"], offsets)}
    <h2>Reset offsets</h2><form class="inline" id="reset">
      <label>Topic<select name="topic"><option value="">every topic</option>${topics}</select></label>
      <label>To<input name="to" value="earliest" placeholder="earliest, latest, 42, time:MILLIS"></label>
      <button type="button" class="secondary" id="preview">Preview (dry run)</button>
      ${settings.actions_enabled ? '<button id="apply">Reset</button>' : ""}</form><div id="reset-result"></div>`;
  const form = document.getElementById("reset");
  const run = async dry_run => {
    const d = new FormData(form);
    try {
      const r = await send("POST", `/api/groups/${encodeURIComponent(id)}/reset`, { topic: d.get("topic") || null, to: d.get("to"), dry_run });
      const rows = r.partitions.map(p => `<tr><td>${esc(p.topic)}</td><td class="num">${p.partition}</td><td class="num">${p.current}</td><td class="num">${p.new}</td></tr>`);
      document.getElementById("reset-result").innerHTML = `<p class="muted">${dry_run ? "Dry run: nothing changed." : "Offsets reset."}</p>` +
        table("reset-plan", ["Topic", "#Partition", "#Current", "#New"], rows);
    } catch (e) { showError("reset-result", e); }
  };
  document.getElementById("preview").onclick = () => run(true);
  form.onsubmit = ev => { ev.preventDefault(); run(false); };
}

// --- routing ---------------------------------------------------------------------------

let generation = 0; // which route is current: a slow answer for an old one is dropped

async function route() {
  clearTimeout(timer);
  if (tail) { tail.close(); tail = null; }
  const mine = ++generation;
  const parts = (location.hash.replace(/^#\/?/, "") || "cluster").split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  let draw;
  if (parts[0] === "topics" && parts[1] && parts[2] === "messages") draw = () => messages(parts[1]);
  else if (parts[0] === "topics" && parts[1]) draw = () => topic(parts[1]);
  else if (parts[0] === "topics") draw = topics;
  else if (parts[0] === "groups" && parts[1]) draw = () => group(parts[1]);
  else if (parts[0] === "groups") draw = groups;
  else draw = cluster;
  // Pages with figures that move refresh themselves, the next refresh once this one is
  // drawn; forms and messages do not.
  const refreshes = ["cluster", "topics", "groups"].includes(parts[0]) && !(parts[0] === "topics" && parts[1]);
  const show = async () => {
    if (mine !== generation) return;
    try {
      await draw();
      if (mine !== generation) return;
      page.dataset.loaded = location.hash || "#/cluster";
    } catch (e) {
      if (mine === generation) page.innerHTML = `<div class="error">${esc(e.message)}</div>`;
    }
    if (refreshes && mine === generation) {
      timer = setTimeout(() => { if (document.querySelector("main :focus")) timer = setTimeout(show, 5000); else show(); }, 5000);
    }
  };
  await show();
}

api("/api/settings").then(s => { settings = s; }).catch(() => {}).finally(() => {
  document.getElementById("mode").textContent = settings.actions_enabled ? "changes enabled" : "read-only";
  window.addEventListener("hashchange", route);
  route();
});
