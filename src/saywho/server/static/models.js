// saywho dashboard: the "Speech models" panel. Lists installed models (size, default,
// loaded or not, idle since, memory held), pulls a model from the server's hub with a
// progress dialog fed by the pull's server-sent events, switches the default, unloads
// and deletes. Uses api(), el() and $ from app.js.
"use strict";

const models = { pulling: false, timer: null, refresher: null };

function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

function modelPath(id) { return id.split("/").map(encodeURIComponent).join("/"); }

function since(epochSeconds) {
  const d = new Date(epochSeconds * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function modelState(m) {
  if (m.state === "partial") return "half-downloaded: pull it again to finish";
  if (m.loaded === null) return "loaded with the first diarization, kept";
  if (!m.loaded) return "not loaded";
  const parts = [m.in_use ? `loaded, in use (${m.in_use})` : `loaded, idle since ${since(m.idle_since)}`];
  if (m.memory_bytes) parts.push(`${bytes(m.memory_bytes)} in memory`);
  if (m.unload_in_s !== null && m.unload_in_s !== undefined) parts.push(`unloads in ${Math.round(m.unload_in_s)} s`);
  return parts.join(" · ");
}

function showModelsError(message) {
  const box = $("#models-error");
  box.textContent = message || "";
  box.hidden = !message;
}

function modelsSay(message) {
  const live = $("#models-status");
  live.textContent = "";
  setTimeout(() => { live.textContent = message; }, 30);
}

async function modelAction(label, run) {
  showModelsError("");
  try {
    await run();
    modelsSay(label);
  } catch (error) {
    showModelsError(`${label} failed: ${error.message}`);
  }
  await refreshModels();
}

function modelItem(m, list) {
  const asr = m.type === "speech-to-text";
  const actions = el("div", { class: "actions" });
  if (asr && m.state === "installed" && !m.default) {
    actions.append(el("button", { type: "button", class: "button secondary small", "aria-label": `Use ${m.id} as the default`,
      onclick: () => modelAction(`${m.id} is now the default`,
        () => api(`/v1/default-model?model=${encodeURIComponent(m.id)}`, { method: "PUT" })) }, "Use"));
  }
  if (m.loaded) {
    actions.append(el("button", { type: "button", class: "button secondary small", "aria-label": `Unload ${m.id}`,
      onclick: () => modelAction(`${m.id} unloaded`, async () => {
        const r = await (await api(`/v1/models/${modelPath(m.id)}/unload`, { method: "POST" })).json();
        if (!r.unloaded) throw new Error(`${m.id} is in use; it unloads after its idle time`);
      }) }, "Unload"));
  }
  if (m.source === "pulled") {
    actions.append(el("button", { type: "button", class: "link danger small", "aria-label": `Delete ${m.id}`,
      onclick: () => {
        if (!confirm(`Delete ${m.id} (${bytes(m.size_bytes)}) from this server?`)) return;
        modelAction(`${m.id} deleted`, () => api(`/v1/models/${modelPath(m.id)}`, { method: "DELETE" }));
      } }, "Delete"));
  }
  return el("li", { class: "model", dataset: { model: m.id } },
    el("span", { class: "name" }, m.id, m.default ? el("span", { class: "badge running" }, " default") : null),
    el("span", { class: "meta" }, `${m.type} · ${m.size_bytes ? bytes(m.size_bytes) : "size known after first use"}`),
    el("span", { class: "meta state" }, modelState(m)),
    actions.childElementCount ? actions : null);
}

async function refreshModels() {
  let listing;
  try {
    listing = await (await api("/v1/models")).json();
  } catch (error) {
    showModelsError(`Could not list the models: ${error.message}`);
    return;
  }
  const list = $("#models");
  const focused = document.activeElement && list.contains(document.activeElement)
    ? document.activeElement.getAttribute("aria-label") : null;
  const rows = listing.data.filter((m) => m.type !== "alias");
  list.replaceChildren(...rows.map((m) => modelItem(m, list)));
  if (focused) {  // keep the keyboard user's place across redraws
    const again = [...list.querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === focused);
    (again || $("#pull-id")).focus();
  }
  const ttl = listing.ttl_s < 0 ? "kept loaded" : `unloaded after ${listing.ttl_s} s idle`;
  $("#models-summary").textContent = `Default: ${listing.default}. Models are ${ttl}` +
    (listing.worker_rss_bytes ? `; the worker holds ${bytes(listing.worker_rss_bytes)}.` : ".");
}

// ---------------------------------------------------------------- pull

function pullLog(message) {
  const log = $("#pull-log");
  log.append(el("li", {}, `${new Date().toLocaleTimeString()}  ${message}`));
  log.scrollTop = log.scrollHeight;
}

function pullEvent(kind, data) {
  if (kind === "log") pullLog(data.message);
  else if (kind === "progress") {
    $("#pull-phase").textContent = data.phase;
    const bar = $("#pull-progress");
    if (data.total) { bar.max = data.total; bar.value = data.completed || 0; }
    if (data.phase === "download") {
      const speed = data.bytes_per_s ? ` · ${bytes(data.bytes_per_s)}/s` : "";
      $("#pull-bytes").textContent = `${bytes(data.completed)} of ${bytes(data.total)}${speed}`;
    } else if (data.phase === "verify") {
      $("#pull-bytes").textContent = `${data.completed} of ${data.total} files checked`;
    } else {
      $("#pull-bytes").textContent = "loading it and decoding a second of silence";
    }
    $("#pull-elapsed").textContent = `${data.elapsed_s.toFixed(1)} s`;
  } else if (kind === "done") {
    $("#pull-phase").textContent = "installed";
    $("#pull-elapsed").textContent = `${data.elapsed_s.toFixed(1)} s`;
    pullLog(`installed ${data.id} in ${data.path}`);
  } else if (kind === "error") {
    $("#pull-phase").textContent = "failed";
    const box = $("#pull-error");
    box.textContent = data.error.message;
    box.hidden = false;
    pullLog(`error: ${data.error.message}`);
  }
}

async function readEvents(response, onEvent) {
  // Server-sent events over a POST: fetch's stream, split into frames.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const frames = buffer.split(/\r?\n\r?\n/);
    buffer = frames.pop();
    for (const frame of frames) {
      let kind = "message", data = "";
      for (const line of frame.split(/\r?\n/)) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(kind, JSON.parse(data));
    }
  }
}

async function pull(id) {
  const dialog = $("#pull-dialog");
  $("#pull-title").textContent = `Pulling ${id}`;
  $("#pull-phase").textContent = "starting";
  $("#pull-bytes").textContent = "–";
  $("#pull-elapsed").textContent = "0 s";
  $("#pull-error").hidden = true;
  $("#pull-log").replaceChildren();
  const bar = $("#pull-progress");
  bar.removeAttribute("value");
  dialog.showModal();
  const started = performance.now();
  models.timer = setInterval(() => {
    if (models.pulling) $("#pull-elapsed").textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 500);
  models.pulling = true;
  let finished = "failed";
  try {
    const response = await api(`/v1/models/${modelPath(id)}`, { method: "POST" });
    await readEvents(response, (kind, data) => {
      if (kind === "done" || kind === "error") { models.pulling = false; finished = kind; }
      pullEvent(kind, data);
    });
  } catch (error) {
    pullEvent("error", { error: { message: error.message } });
  } finally {
    models.pulling = false;
    clearInterval(models.timer);
  }
  dialog.dataset.finished = finished;
  modelsSay(finished === "done" ? `${id} installed` : `pulling ${id} failed`);
  $("#pull-close").focus();
  await refreshModels();
}

window.addEventListener("DOMContentLoaded", () => {
  $("#pull-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("#pull-id").value.trim();
    if (id && !models.pulling) pull(id);
  });
  $("#pull-dialog").addEventListener("close", () => {
    $("#pull-dialog").dataset.finished = "";
    $("#pull-id").focus();
  });
  refreshModels();
  models.refresher = setInterval(() => { if (!document.hidden && !models.pulling) refreshModels(); }, 5000);
});
window.saywho = Object.assign(window.saywho || {}, { refreshModels });
