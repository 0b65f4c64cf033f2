// The crawl service's page: runs and schedules from the API every second; changes are
// POSTed with the page's token (?token= in its address).
"use strict";
const token = new URLSearchParams(window.location.search).get("token") || "";
const withToken = (path) => token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
const $ = (id) => document.getElementById(id);
let logEvents = null;

function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "" : String(value);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function button(parent, label, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.disabled = !token;
  b.addEventListener("click", action);
  parent.appendChild(b);
}

function link(parent, label, href) {
  const a = document.createElement("a");
  a.textContent = label;
  a.href = href;
  parent.appendChild(a);
  parent.appendChild(document.createTextNode(" "));
}

async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {
    "X-Crawler-Token": token, "Content-Type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function pairs(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

function when(stamp) {
  return stamp ? new Date(stamp * 1000).toLocaleString() : "";
}

function renderRuns(runs) {
  const body = $("runs");
  body.replaceChildren();
  for (const run of runs) {
    const row = document.createElement("tr");
    row.id = `run-${run.id}`;
    cell(row, run.id.slice(0, 12));
    cell(row, run.spider);
    cell(row, run.state, `state ${run.state}`);
    const numbers = run.live || run.stats || {};
    cell(row, numbers.pages ?? "", "num pages");
    cell(row, numbers.items ?? "", "num items");
    cell(row, when(run.started));
    cell(row, run.finish_reason || "");
    const actions = cell(row, "");
    if (run.state === "running" || run.state === "queued")
      button(actions, "Pause", () => post(`/api/runs/${run.id}/pause`).then(refresh));
    if (run.state === "paused")
      button(actions, "Resume", () => post(`/api/runs/${run.id}/resume`).then(refresh));
    if (!["finished", "failed", "cancelled", "cancelling"].includes(run.state))
      button(actions, "Cancel", () => post(`/api/runs/${run.id}/cancel`).then(refresh));
    button(actions, "Log", () => follow(run.id));
    actions.lastChild.disabled = false;
    if (run.state === "running") link(actions, "status", withToken(`/runs/${run.id}/status/`));
    link(actions, "items", `/api/runs/${run.id}/items.jl`);
    body.appendChild(row);
  }
}

function renderSchedules(schedules) {
  const body = $("schedules");
  body.replaceChildren();
  for (const s of schedules) {
    const row = document.createElement("tr");
    cell(row, s.id);
    cell(row, s.spider);
    cell(row, s.cron ? `${s.cron} (${s.timezone})` : `every ${s.every} s`);
    cell(row, s.enabled ? when(s.next_fire) : "off");
    cell(row, s.fired, "num");
    const actions = cell(row, "");
    button(actions, "Run now", () => post(`/api/schedules/${s.id}/run`).then(refresh));
    body.appendChild(row);
  }
}

function follow(runId) {
  if (logEvents) logEvents.close();
  $("log-section").hidden = false;
  $("log-run").textContent = runId;
  $("log").textContent = "";
  logEvents = new EventSource(withToken(`/api/runs/${runId}/log/stream`));
  logEvents.onmessage = (event) => {
    const log = $("log");
    log.textContent += JSON.parse(event.data);
    if (log.textContent.length > 200000) log.textContent = log.textContent.slice(-100000);
    log.scrollTop = log.scrollHeight;
  };
}

async function refresh() {
  try {
    const [runs, schedules, status] = await Promise.all([
      fetch(withToken("/api/runs?limit=50")).then((r) => r.json()),
      fetch(withToken("/api/schedules")).then((r) => r.json()),
      fetch(withToken("/api/status")).then((r) => r.json())]);
    renderRuns(runs.runs);
    renderSchedules(schedules.schedules);
    const counts = status.runs;
    $("summary").textContent = `${status.running} of ${status.max_runs} running; ` +
      `${counts.queued || 0} queued, ${counts.paused || 0} paused, ` +
      `${counts.finished || 0} finished; ${(status.disk_bytes / 1048576).toFixed(1)} MB on disk`;
  } catch (error) {
    $("summary").textContent = `the service does not answer (${error.message})`;
  }
}

async function spiders() {
  const listing = await fetch(withToken("/api/spiders")).then((r) => r.json());
  const select = $("spider");
  select.replaceChildren();
  for (const s of listing.spiders) {
    const option = document.createElement("option");
    option.value = option.textContent = s.name;
    option.title = s.summary;
    select.appendChild(option);
  }
}

$("start").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("start-note").textContent = "";
  try {
    await post("/api/runs", {spider: $("spider").value, args: pairs($("args").value),
      settings: pairs($("settings").value), priority: Number($("priority").value) || 0});
    refresh();
  } catch (error) {
    $("start-note").textContent = error.message;
  }
});
$("start-button").disabled = !token;
spiders();
refresh();
setInterval(refresh, 1000);
