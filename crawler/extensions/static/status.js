// The status page's script: reads the crawl's snapshots (server-sent events, one a
// second) and draws them; the buttons POST to the crawl with the page's token.
"use strict";

const token = new URLSearchParams(window.location.search).get("token") || "";
const withToken = (path) => token ? `${path}?token=${encodeURIComponent(token)}` : path;
const $ = (id) => document.getElementById(id);

function text(id, value) { $(id).textContent = String(value); }

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    td.textContent = cell === null || cell === undefined ? "-" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, rows) { $(id).replaceChildren(...rows.map(row)); }

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

function chart(history) {
  const line = $("line");
  if (!history.length) { line.setAttribute("points", ""); return; }
  const max = Math.max(1, ...history.map((p) => p[1]));
  const t0 = history[0][0], t1 = history[history.length - 1][0];
  const span = Math.max(1, t1 - t0);
  const points = history.map(([t, rate]) =>
    `${((t - t0) / span * 800).toFixed(1)},${(200 - rate / max * 190).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
  text("chart-max", `max ${max.toFixed(1)} pages/s`);
  text("chart-span", `last ${duration(span)}`);
}

function render(s) {
  text("spider", s.spider);
  const state = $("state");
  state.textContent = s.state;
  state.className = `badge ${s.state}`;
  text("pages", s.pages); text("items", s.items); text("rate", s.pages_per_second);
  text("queued", s.queued); text("in_flight", s.in_flight); text("failed", s.failed);
  text("retries", s.retries); text("elapsed", duration(s.elapsed));
  if (s.progress === null) {
    text("eta", `no limit set: ${s.queued} queued`);
    $("progress").style.width = "0";
  } else {
    text("eta", `${(s.progress * 100).toFixed(1)}% of the nearest limit; about ` +
         `${duration(s.eta_seconds)} left`);
    $("progress").style.width = `${(s.progress * 100).toFixed(1)}%`;
  }
  chart(s.history);
  fill("hosts", s.hosts.map((h) => [h.host, h.requests, `${(h.latency * 1000).toFixed(1)} ms`,
                                     h.in_flight, h.delay === null ? null : `${h.delay} s`]));
  const errors = Object.entries(s.errors);
  $("errors").replaceChildren(...(errors.length ? errors : [["none", ""]]).map(([k, v]) => {
    const li = document.createElement("li");
    li.textContent = v === "" ? k : `${k}: ${v}`;
    return li;
  }));
  fill("failures", s.failures.map((f) => [`${f.at}s`, f.kind, f.url]));
  if (s.fleet) {
    $("fleet-section").hidden = false;
    const c = s.fleet.counts || {};
    text("fleet-counts", s.fleet.error ? s.fleet.error :
         `queued ${c.queued || 0}, leased ${s.fleet.leased}, done ${c.acked || 0}, ` +
         `pages ${c.pages || 0}, items ${c.items || 0}, seen ${s.fleet.seen}`);
    fill("fleet", Object.entries(s.fleet.workers || {}).map(([name, w]) =>
      [name, `${w.age.toFixed(1)} s ago`, w.pages, w.pages_per_second, w.items, w.in_flight]));
  }
  if (s.job_dir) {  // a job directory (crawler/storage/jobdir.py); continuous: what is due
    $("job-section").hidden = false;
    const due = s.next_due === undefined ? "" : s.next_due === null ? "; nothing due" :
      `; next page due ${new Date(s.next_due * 1000).toISOString().replace(".000", "")}`;
    text("job", `${s.job_dir}, round ${s.round}${s.resumed ? ", resumed" : ""}${due}`);
  }
  if (s.concurrency) {  // concurrency = "auto" (crawler/core/autoscale.py)
    const c = s.concurrency;
    $("concurrency-section").hidden = false;
    text("concurrency", `${c.limit} of at most ${c.max}; last change at ${c.changed} s: ` +
         c.reason);
  }
  if (s.monitors && s.monitors.length) {  // crawler/extensions/monitors.py: the latest results
    $("monitors-section").hidden = false;
    fill("monitors", s.monitors.map((m) => [m.name, m.passed ? "passed" : "FAILED", m.message]));
  }
  if (s.browser) {  // pages rendered in Chromium (crawler/handlers/browser.py)
    const b = s.browser;
    $("browser-section").hidden = false;
    text("browser", `${b.running} of ${b.browsers} running: ${b.pages_open} pages open, ` +
         `${b.contexts} contexts, ${b.memory_mb} MB, ${b.restarts} restarts`);
  }
  const live = s.state === "running" || s.state === "paused";
  $("pause").disabled = !token || !live || s.state === "paused";
  $("resume").disabled = !token || s.state !== "paused";
  $("stop").disabled = !token || !live;
}

async function control(action) {
  if (action === "stop" && !window.confirm("Stop the crawl? Requests in progress finish."))
    return;
  const response = await fetch(`api/${action}`, {
    method: "POST", headers: {"X-Crawler-Token": token}});
  if (!response.ok) text("control-note", `${action} refused (${response.status})`);
}

function connect() {
  const events = new EventSource(withToken("api/events"));
  events.onmessage = (message) => render(JSON.parse(message.data));
  events.addEventListener("closed", () => {
    events.close();
    $("state").textContent = "closed";
    $("state").className = "badge closed";
    for (const id of ["pause", "resume", "stop"]) $(id).disabled = true;
  });
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) {
      $("state").textContent = "disconnected";
      $("state").className = "badge disconnected";
    }
  };
}

async function first() {
  // a snapshot at once, not a second later with the stream's first event
  try {
    const response = await fetch(withToken("api/stats"));
    if (response.ok) render(await response.json());
  } catch (error) {
    text("control-note", `cannot read the crawl's status: ${error}`);
  }
}

window.addEventListener("DOMContentLoaded", () => {
  if (!token) text("control-note", "read-only: open the URL with ?token= to use the buttons");
  for (const action of ["pause", "resume", "stop"])
    $(action).addEventListener("click", () => control(action));
  first();
  connect();
});
