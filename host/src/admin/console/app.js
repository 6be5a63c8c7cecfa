// wisp console: a small single-page app over the admin API. No framework,
// no network beyond this host. Pages: #/ (functions), #/functions/NAME,
// #/deploy. Every API call carries the session's anti-CSRF token in
// `x-wisp-csrf` (required for changes made with the session cookie); the
// host writes it into the page, never into a cookie.
"use strict";

const view = document.getElementById("view");
const csrf = document.querySelector('meta[name="wisp-csrf"]').content;
const signOut = document.getElementById("sign-out");
if (signOut.dataset.signedIn !== "true") { signOut.hidden = true; }
let timers = [];
let tail = null;

function stopPage() {
  timers.forEach(clearInterval);
  timers = [];
  if (tail) { tail.abort(); tail = null; }
}

function every(ms, fn) { fn(); timers.push(setInterval(fn, ms)); }

async function api(path, options = {}) {
  const headers = Object.assign({ "x-wisp-csrf": csrf }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (response.status === 401) { location.reload(); throw new Error("signed out"); }
  const text = await response.text();
  let body = text;
  try { body = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error ? body.error : (text || response.statusText);
    throw new Error(message);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const us = (v) => v == null ? "–" : v >= 1000 ? (v / 1000).toFixed(1) + " ms" : v + " µs";
const pct = (v) => (v * 100).toFixed(1) + " %";
const split = (f) => f.traffic.map((t) => `v${t.version} ${t.weight}%`).join(" · ");

// ---- Functions ----

async function functionsPage() {
  const table = el("table", { id: "functions" },
    el("thead", {}, el("tr", {}, ["Function", "Route", "Version", "Traffic", "Req/s", "Errors", "p50", "p99", "Instantiate"].map((h) => el("th", { text: h })))),
    el("tbody"));
  const error = el("p", { class: "error" });
  const damaged = el("ul", { class: "error", id: "damaged" });
  const builders = el("p", { id: "builders" });
  view.replaceChildren(el("h1", { text: "Functions" }), damaged, error, table, builders);
  every(2000, async () => {
    try {
      const [functions, stats, health] = await Promise.all([api("/v1/functions"), api("/v1/stats?window=10"), api("/healthz")]);
      // State files the host cannot use (see /healthz): named, until repaired or removed.
      damaged.replaceChildren(...(health.damaged || []).map((d) => el("li", { text: "Damaged: " + d })));
      // What this host builds from source (git push, wisp deploy --source).
      const can = (health.builders || []).filter((b) => b.available).map((b) => b.language);
      const cannot = (health.builders || []).filter((b) => !b.available).map((b) => `${b.language} (${b.detail})`);
      builders.textContent = (health.builders || []).length
        ? `Builds from source: ${can.join(", ") || "none"}` + (cannot.length ? `; cannot build ${cannot.join("; ")}` : "")
        : "";
      const byName = Object.fromEntries(stats.map((s) => [s.name, s.stats]));
      const rows = functions.map((f) => {
        const s = byName[f.name] || {};
        const current = f.traffic.length ? Math.max(...f.traffic.map((t) => t.version)) : null;
        return el("tr", { "data-function": f.name },
          el("td", {}, el("a", { href: `#/functions/${encodeURIComponent(f.name)}`, text: f.name })),
          el("td", { text: f.route }),
          el("td", { text: current ? "v" + current : "–" }),
          el("td", { text: f.unavailable ? "unavailable" : split(f) }),
          el("td", { class: "num", text: (s.requests_per_second || 0).toFixed(1) }),
          el("td", { class: "num", text: pct(s.error_rate || 0) }),
          el("td", { class: "num", text: us(s.p50_us) }),
          el("td", { class: "num", text: us(s.p99_us) }),
          el("td", { class: "num", text: us(s.instantiate_us) }));
      });
      table.tBodies[0].replaceChildren(...rows);
      error.textContent = functions.length ? "" : "No functions yet: deploy one.";
    } catch (e) { error.textContent = e.message; }
  });
}

// ---- One function ----

function chart(title, points, series) {
  const width = 300, height = 90;
  const values = points.flatMap((p) => series.map((pick) => pick(p) || 0));
  const top = Math.max(1, ...values);
  const lines = series.map((pick, i) => {
    const coords = points.map((p, x) => `${(x / Math.max(1, points.length - 1)) * width},${height - ((pick(p) || 0) / top) * (height - 4) - 2}`);
    return `<polyline class="${i ? "second" : ""}" points="${coords.join(" ")}"/>`;
  }).join("");
  const box = el("div", { class: "chart" }, el("h3", { text: `${title} (max ${Math.round(top)})` }));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.innerHTML = lines;
  box.append(svg);
  return box;
}

function settingsList(settings) {
  const entries = Object.entries(settings || {});
  if (!entries.length) return el("p", { text: "Defaults only." });
  return el("dl", {}, entries.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: settingText(v) })]));
}

// A setting's value as typed: lists joined, `KEY=VALUE` pairs (env,
// config) as such.
function settingText(value) {
  if (Array.isArray(value)) return value.join(", ");
  if (value && typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k}=${v}`).join(", ");
  }
  return String(value);
}

async function functionPage(name) {
  const path = `/v1/functions/${encodeURIComponent(name)}`;
  const message = el("p", { id: "message" });
  const versions = el("div", { id: "versions" });
  const charts = el("div", { class: "charts", id: "charts" });
  const usage = el("div", { id: "usage" });
  const settings = el("div", { id: "settings" });
  const logs = el("pre", { class: "tail", id: "log-tail" });
  const source = el("div", { id: "source" });
  view.replaceChildren(
    el("h1", { text: name }), message,
    el("h2", { text: "Versions and traffic" }), versions,
    el("h2", { text: "Source and builds" }), source,
    el("h2", { text: "Last 5 minutes" }), charts,
    el("div", { class: "grid2" },
      el("div", {}, el("h2", { text: "Usage" }), usage),
      el("div", {}, el("h2", { text: "Settings" }), settings)),
    el("h2", { text: "Live log" }), logs);

  async function loadVersions() {
    const info = await api(path);
    const weights = Object.fromEntries(info.traffic.map((t) => [t.version, t.weight]));
    const inputs = {};
    const rows = info.versions.map((v) => {
      inputs[v.number] = el("input", { class: "weight", type: "number", min: "0", max: "100", value: String(weights[v.number] || 0), id: `weight-v${v.number}` });
      return el("tr", {}, el("td", { text: "v" + v.number }), el("td", { text: v.abi }),
        el("td", { text: new Date(v.created_unix * 1000).toISOString().replace("T", " ").slice(0, 19) }),
        el("td", { text: v.source.slice(0, 12) }), el("td", { text: v.origin || "upload" }), el("td", {}, inputs[v.number], " %"));
    });
    const apply = el("button", { id: "apply-traffic", onclick: async () => {
      const shares = Object.entries(inputs).map(([version, input]) => ({ version: Number(version), weight: Number(input.value) })).filter((s) => s.weight > 0);
      try { await api(`${path}/traffic`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(shares) }); show("Traffic split applied.", true); await loadVersions(); } catch (e) { show(e.message); }
    } }, "Apply split");
    const rollback = el("button", { class: "secondary", id: "rollback", onclick: async () => {
      try { await api(`${path}/rollback`, { method: "POST" }); show("Rolled back.", true); await loadVersions(); } catch (e) { show(e.message); }
    } }, "Roll back");
    versions.replaceChildren(
      el("table", {}, el("thead", {}, el("tr", {}, ["Version", "ABI", "Deployed (UTC)", "Source", "From", "Weight"].map((h) => el("th", { text: h })))), el("tbody", {}, rows)),
      apply, " ", rollback);
    const current = info.versions[info.versions.length - 1];
    let secrets = [];
    try { secrets = (await api(`${path}/secrets`)).secrets; } catch (_) { /* none */ }
    settings.replaceChildren(settingsList(current && current.settings),
      el("p", { text: secrets.length ? "Secrets: " + secrets.join(", ") + " (values never shown)" : "No secrets." }));
  }

  // Where to push, and the last build on this host: its state (the log's
  // last line says how it ended) and its output.
  async function loadSource() {
    const remote = `${location.origin}/git/${encodeURIComponent(name)}.git`;
    const push = el("p", {}, "Push to build and deploy: ", el("code", { id: "push-url", text: `git push ${remote} main` }));
    let log = null;
    try { log = await api(`${path}/build`); } catch (_) { /* no build yet */ }
    if (log === null) {
      source.replaceChildren(push, el("p", { id: "build-state", text: "No build on this host yet." }));
      return;
    }
    const last = String(log).trim().split("\n").pop() || "";
    const state = last.startsWith("wisp: built") ? "Last build: succeeded" : "Last build: failed";
    source.replaceChildren(push, el("p", { id: "build-state", class: state.endsWith("succeeded") ? "ok" : "error", text: `${state} — ${last.replace(/^wisp: /, "")}` }),
      el("pre", { class: "tail", id: "build-log", text: String(log) }));
  }

  function show(text, ok) { message.className = ok ? "ok" : "error"; message.textContent = text; }

  try { await loadVersions(); await loadSource(); } catch (e) { show(e.message); return; }
  every(2000, async () => {
    try {
      const [stats, use] = await Promise.all([api(`${path}/stats?window=300`), api(`${path}/usage`)]);
      const points = stats.history;
      charts.replaceChildren(
        chart("requests/s", points, [(p) => p.requests]),
        chart("latency µs (p50, p99)", points, [(p) => p.p50_us, (p) => p.p99_us]),
        chart("instantiate µs", points, [(p) => p.instantiate_us]));
      const u = use.usage;
      usage.replaceChildren(el("dl", {},
        el("dt", { text: "requests" }), el("dd", { text: u.requests }),
        el("dt", { text: "CPU" }), el("dd", { text: u.cpu_seconds.toFixed(3) + " s" }),
        el("dt", { text: "wall" }), el("dd", { text: u.wall_seconds.toFixed(3) + " s" }),
        el("dt", { text: "memory-time" }), el("dd", { text: u.memory_gb_seconds.toExponential(2) + " GB·s" }),
        el("dt", { text: "fuel" }), el("dd", { text: u.fuel })));
    } catch (e) { show(e.message); }
  });
  followLogs(`${path}/logs?follow=true&limit=200`, logs);
}

async function followLogs(url, pre) {
  tail = new AbortController();
  try {
    const response = await fetch(url, { headers: { "x-wisp-csrf": csrf }, signal: tail.signal, credentials: "same-origin" });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const line of lines) {
        if (!line) continue;
        const event = JSON.parse(line);
        const text = event.text !== undefined
          ? `${new Date(event.time_unix_ms).toISOString().slice(11, 23)} v${event.version} ${event.trigger || "http"} ${event.stream}: ${event.text}`
          : JSON.stringify(event);
        pre.append(text + "\n");
        pre.scrollTop = pre.scrollHeight;
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") pre.append(`(log stream ended: ${e.message})\n`);
  }
}

// ---- Deploy ----

function deployPage() {
  const file = el("input", { type: "file", id: "wasm", accept: ".wasm", required: "" });
  const name = el("input", { id: "name", required: "", placeholder: "hello" });
  const route = el("input", { id: "route", placeholder: "/hello (default: /NAME)" });
  const settings = el("textarea", { id: "settings", placeholder: "one setting per line, e.g.\ntimeout=2s\nenv=GREETING=hi" });
  const result = el("p", { id: "result" });
  const form = el("form", { id: "deploy", onsubmit: async (event) => {
    event.preventDefault();
    result.className = ""; result.textContent = "Deploying…";
    const query = new URLSearchParams();
    if (route.value.trim()) query.append("route", route.value.trim());
    for (const line of settings.value.split("\n")) {
      const at = line.indexOf("=");
      if (at > 0) query.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
    }
    try {
      const bytes = await file.files[0].arrayBuffer();
      const report = await api(`/v1/functions/${encodeURIComponent(name.value.trim())}?${query}`, { method: "PUT", body: bytes });
      result.className = "ok";
      result.textContent = `Deployed ${report.name} v${report.version} at ${report.route}.`;
    } catch (e) { result.className = "error"; result.textContent = e.message; }
  } },
    el("label", { for: "wasm", text: ".wasm file" }), file,
    el("label", { for: "name", text: "Name" }), name,
    el("label", { for: "route", text: "Route" }), route,
    el("label", { for: "settings", text: "Settings" }), settings,
    el("button", { type: "submit" }, "Deploy"));
  view.replaceChildren(el("h1", { text: "Deploy a function" }), form, result);
}

function route() {
  stopPage();
  const hash = location.hash || "#/";
  const match = hash.match(/^#\/functions\/(.+)$/);
  if (match) functionPage(decodeURIComponent(match[1]));
  else if (hash === "#/deploy") deployPage();
  else functionsPage();
}

window.addEventListener("hashchange", route);
route();
