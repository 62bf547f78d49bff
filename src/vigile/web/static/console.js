/* vigile console: draws plots with plotly.js and sends allowlist changes to the JSON API.
 * Plots take their data from data-src (a JSON API URL) or, in the offline report, from
 * data-json. A drawn plot gets data-rendered="1". */
"use strict";

const LAYOUT = { margin: { l: 60, r: 20, t: 30, b: 40 }, height: 300, hovermode: "closest",
  legend: { orientation: "h", x: 0, y: 1.12 } };
const CONFIG = { displaylogo: false, responsive: true };

function traffic(d) {
  return [[
    { x: d.t, y: d.bytes_out, name: "bytes out", type: "scatter", mode: "lines" },
    { x: d.t, y: d.bytes_in, name: "bytes in", type: "scatter", mode: "lines" },
  ], { yaxis: { title: { text: "bytes per bucket" } } }];
}

function intervals(d) {
  return [[{ x: d.intervals, type: "histogram", name: "gaps", nbinsx: 60 }],
    { xaxis: { title: { text: "seconds between consecutive connections" }, rangemode: "tozero" },
      yaxis: { title: { text: "count" } } }];
}

function checkins(d) {
  return [[{ x: d.t, y: d.bytes, type: "scatter", mode: "markers", name: "check-in",
    marker: { size: 5 } }], { yaxis: { title: { text: "bytes sent" } } }];
}

function series(d) {
  const shapes = [{ type: "rect", xref: "x", yref: "paper", x0: d.window[0], x1: d.window[1],
    y0: 0, y1: 1, fillcolor: "#f0ad4e", opacity: 0.15, line: { width: 0 } }];
  const traces = [{ x: d.t, y: d.bytes, type: "bar", name: d.label }];
  if (d.baseline !== null && d.baseline !== undefined && d.t.length) {
    traces.push({ x: [d.t[0], d.t[d.t.length - 1]], y: [d.baseline, d.baseline], type: "scatter",
      mode: "lines", name: "baseline", line: { dash: "dash", color: "#8b1a1a" } });
  }
  return [traces, { shapes: shapes, yaxis: { title: { text: "bytes per hour" } } }];
}

const KINDS = { traffic, intervals, checkins, series };

function draw(el, data) {
  const [traces, layout] = KINDS[el.dataset.kind](data);
  const empty = traces.every((t) => !(t.x && t.x.length));
  if (empty) { el.textContent = "No data for this plot."; el.dataset.rendered = "empty"; return; }
  Plotly.newPlot(el, traces, Object.assign({}, LAYOUT, layout), CONFIG)
    .then(() => { el.dataset.rendered = "1"; });
}

/* GET a JSON API URL. While another process holds the store (a long ingest), the console
 * answers 503 with Retry-After: say so through busy(message) and ask again after that wait. */
function getJson(url, busy) {
  return fetch(url, { credentials: "same-origin" }).then((r) => {
    if (r.status === 503) {
      const wait = parseInt(r.headers.get("Retry-After") || "5", 10);
      return r.json().then((j) => {
        busy(j.detail + "; trying again in " + wait + " s");
        return new Promise((ok) => setTimeout(ok, wait * 1000)).then(() => getJson(url, busy));
      });
    }
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    return r.json();
  });
}

function drawCharts() {
  document.querySelectorAll(".chart[data-kind]").forEach((el) => {
    if (el.dataset.json) { draw(el, JSON.parse(el.dataset.json)); return; }
    getJson(el.dataset.src, (message) => { el.textContent = message; })
      .then((d) => { el.textContent = ""; draw(el, d); })
      .catch((e) => { el.textContent = "Could not load the plot: " + e.message; });
  });
}

function csrf() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function api(method, url, body) {
  return fetch(url, {
    method: method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then((r) => {
    if (r.ok) return r;
    return r.json().then((j) => { throw new Error(typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail)); });
  });
}

function allowlistPage() {
  const form = document.getElementById("entry-form");
  if (!form) return;
  const error = document.getElementById("form-error");
  const fail = (e) => { error.textContent = e.message; error.hidden = false; };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = { kind: f.get("kind"), value: f.get("value"), reason: f.get("reason"),
      detector: f.get("detector") || null };
    const id = form.dataset.entry;
    const call = id ? api("PUT", "/api/allowlist/" + encodeURIComponent(id), body)
      : api("POST", "/api/allowlist", body);
    call.then(() => { window.location.assign("/allowlist"); }).catch(fail);
  });
  document.getElementById("cancel-edit").addEventListener("click", () => window.location.assign("/allowlist"));
  document.querySelectorAll("#entries tr[data-entry]").forEach((row) => {
    row.querySelector(".edit-entry").addEventListener("click", () => {
      form.dataset.entry = row.dataset.entry;
      ["kind", "value", "detector", "reason"].forEach((k) => { form.elements[k].value = row.dataset[k]; });
      document.getElementById("save-entry").textContent = "Save " + row.dataset.entry;
      document.getElementById("cancel-edit").hidden = false;
    });
    row.querySelector(".remove-entry").addEventListener("click", () => {
      if (!window.confirm("Remove " + row.dataset.entry + "?")) return;
      api("DELETE", "/api/allowlist/" + encodeURIComponent(row.dataset.entry))
        .then(() => window.location.assign("/allowlist")).catch(fail);
    });
  });
}

document.addEventListener("DOMContentLoaded", () => { drawCharts(); allowlistPage(); });
