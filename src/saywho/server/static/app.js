// saywho dashboard: plain JavaScript, no build step, no CDN. Talks to /v1/jobs (and /v1/realtime in Live mode).
// app.js: API, upload and recording, the job list, one job (progress, partial transcript,
// result); timeline.js draws the timeline; edit.js renames and corrects speakers; live.js is
// Live mode (the microphone over WS /v1/realtime).
"use strict";

const FORMATS = [
  ["srt", "SRT"], ["vtt", "WebVTT"], ["txt", "Text"], ["json", "JSON"],
  ["diarized_json", "Diarized JSON"], ["rttm", "RTTM"],
];
// 20 colours chosen to stay apart (Kelly's and Tableau's distinct sets, dark enough for
// white digits); beyond them, hues spread by the golden angle. Colour is never the only
// cue: every speaker also carries its number (swatch, timeline row, transcript line).
const COLOURS = ["#1f5fa8", "#c62828", "#2e7d32", "#6a3d9a", "#b35900", "#00838f", "#8c564b", "#ad1457",
  "#546e7a", "#6b6b00", "#283593", "#bf360c", "#00695c", "#9c27b0", "#4e342e", "#0277bd", "#827717",
  "#5d4037", "#c2185b", "#33691e"];
const TERMINAL = new Set(["finished", "failed", "cancelled"]);
const STEP_NAMES = {
  plan: "reading the audio", decode: "reading the audio", asr: "transcribing", segmentation: "finding voices",
  embeddings: "telling voices apart", clustering: "matching speakers", assign: "matching words to speakers",
  chunks: "transcribing", stitch: "matching speakers across parts", done: "done",
};

const state = {
  jobId: null, job: null, transcript: null, events: null, poller: null,
  pxPerSecond: null, lastJobId: null, recorder: null, corrections: 0, eta: null, announced: "",
};

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
};

// ---------------------------------------------------------------- API

function apiKey() { return localStorage.getItem("saywho.apiKey") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    const key = prompt("This server needs an API key:");
    if (key) { localStorage.setItem("saywho.apiKey", key.trim()); return api(path, options); }
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

async function postJSON(path, body, method = "POST") {
  return (await api(path, { method, headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) })).json();
}

// ---------------------------------------------------------------- formatting

function clock(seconds, decimals = 1) {
  const t = Math.max(0, seconds);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
  const ss = decimals ? s.toFixed(decimals).padStart(3 + decimals, "0") : String(Math.floor(s)).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function spoken(seconds) {
  const t = Math.round(seconds);
  if (t < 60) return `${t} s`;
  const m = Math.floor(t / 60);
  return m < 60 ? `${m} min ${t % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function speakerIndex(label) {
  const speakers = state.transcript ? state.transcript.speakers : [];
  const i = speakers.findIndex((s) => s.label === label);
  return i < 0 ? 0 : i;
}

function paletteColour(i) {
  if (i < COLOURS.length) return COLOURS[i];
  return `hsl(${Math.round((i * 137.508) % 360)}, 60%, ${i % 2 ? 28 : 34}%)`;
}

function colourOf(label) { return paletteColour(speakerIndex(label)); }

function displayOf(label) {
  const s = (state.transcript ? state.transcript.speakers : []).find((x) => x.label === label);
  return s ? (s.display || s.label) : (label || "—");
}

function swatch(label) {
  return el("span", { class: "swatch", "aria-hidden": "true", style: { background: colourOf(label) } },
    String(speakerIndex(label) + 1));
}

function announce(message) {
  // The polite live region: progress steps, corrections, renames.
  const live = $("#progress-live");
  live.textContent = "";
  setTimeout(() => { live.textContent = message; }, 30);
}

// ---------------------------------------------------------------- upload & record

function showUploadError(message) {
  const box = $("#upload-error");
  box.textContent = message;
  box.hidden = !message;
}

async function upload(file) {
  showUploadError("");
  $("#upload-status").textContent = `Uploading ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  const speakers = $("#opt-speakers").value;
  if (speakers) form.append("num_speakers", speakers);
  const language = $("#opt-language").value.trim();
  if (language) form.append("language", language);
  try {
    const job = await (await api("/v1/jobs", { method: "POST", body: form })).json();
    $("#upload-status").textContent = `Started a job for ${file.name}.`;
    await refreshJobs();
    selectJob(job.id, { focus: false });
  } catch (error) {
    $("#upload-status").textContent = "";
    showUploadError(`Could not start a job: ${error.message}`);
  }
}

function setupDrop() {
  const drop = $("#drop");
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, (e) => {
    e.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (e) => {
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) upload(file);
  });
  $("#file-input").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) upload(file);
    e.target.value = "";
  });
  $("#record").addEventListener("click", toggleRecording);
}

async function toggleRecording() {
  const button = $("#record");
  if (state.recorder) { state.recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showUploadError("This browser cannot record here (recording needs https or localhost).");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showUploadError(`No microphone: ${error.message}`);
    return;
  }
  const recorder = new MediaRecorder(stream);
  const parts = [];
  const started = Date.now();
  const timer = setInterval(() => { $("#record-time").textContent = clock((Date.now() - started) / 1000, 0); }, 250);
  recorder.ondataavailable = (e) => { if (e.data.size) parts.push(e.data); };
  recorder.onstop = () => {
    clearInterval(timer);
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    button.textContent = "● Record";
    button.setAttribute("aria-pressed", "false");
    button.classList.remove("recording");
    $("#record-time").hidden = true;
    const type = recorder.mimeType || "audio/webm";
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    upload(new File(parts, `recording-${stamp}.${ext}`, { type: type.split(";")[0] }));
  };
  state.recorder = recorder;
  recorder.start(1000);
  button.textContent = "■ Stop recording";
  button.setAttribute("aria-pressed", "true");
  button.classList.add("recording");
  $("#record-time").textContent = "0:00";
  $("#record-time").hidden = false;
}

// ---------------------------------------------------------------- job list

function jobMeta(job) {
  const percent = job.status === "finished" ? 100 : job.progress;
  return `${job.status} · ${job.duration ? clock(job.duration, 0) : "length unknown"}`
    + (TERMINAL.has(job.status) ? "" : ` · ${Math.floor(percent)}%`);
}

async function refreshJobs() {
  let page;
  try {
    page = await (await api("/v1/jobs?limit=50")).json();
  } catch (error) {
    $("#server-state").textContent = `server unreachable: ${error.message}`;
    return;
  }
  $("#server-state").textContent = "";
  const list = $("#jobs");
  const focused = document.activeElement && document.activeElement.closest("#jobs .job-item");
  const focusedId = focused ? focused.dataset.id : null;
  list.replaceChildren();
  if (!page.data.length) list.append(el("li", { class: "muted empty" }, "No jobs yet."));
  for (const job of page.data) {
    const percent = job.status === "finished" ? 100 : job.progress;
    const button = el("button", {
      type: "button", class: `job-item${job.id === state.jobId ? " selected" : ""}`, dataset: { id: job.id },
      "aria-current": job.id === state.jobId ? "true" : null, onclick: () => selectJob(job.id),
    },
    el("span", { class: "name", title: job.filename }, job.filename),
    el("span", { class: "meta" }, jobMeta(job)),
    el("span", { class: "mini", "aria-hidden": "true" }, el("span", { style: { width: `${percent}%` } })));
    list.append(el("li", {}, button));
  }
  if (focusedId) { const again = list.querySelector(`[data-id="${focusedId}"]`); if (again) again.focus(); }
  const active = page.data.some((j) => !TERMINAL.has(j.status));
  clearTimeout(state.poller);
  state.poller = setTimeout(refreshJobs, active ? 2000 : 10000);
}

// ---------------------------------------------------------------- one job

function closeEvents() {
  if (state.events) { state.events.close(); state.events = null; }
}

function timeLeft(percent, job) {
  // From the rate since the job started (the CLI's bar does the same).
  if (!job || !job.started_at || percent < 3 || percent >= 100) return null;
  const elapsed = Date.now() / 1000 - job.started_at;
  return elapsed > 2 ? elapsed * (100 - percent) / percent : null;
}

function setProgress(percent, job) {
  const p = Math.max(0, Math.min(100, percent));
  $("#progress-fill").style.width = `${p}%`;
  const parts = [`${Math.floor(p)}%`];
  const running = job && !TERMINAL.has(job.status) && p < 100;
  if (running && job.step && STEP_NAMES[job.step]) parts.push(STEP_NAMES[job.step]);
  if (job && job.chunks && job.chunks.total > 1) parts.push(`part ${Math.min(job.chunks.completed + (running ? 1 : 0),
    job.chunks.total)} of ${job.chunks.total}`);
  const left = running ? timeLeft(p, job) : null;
  if (left !== null) parts.push(`about ${spoken(left)} left`);
  const text = parts.join(" · ");
  $("#progress-text").textContent = text;
  $("#progress-text").dataset.percent = String(p);
  $("#progress-bar").setAttribute("aria-valuenow", String(Math.floor(p)));
  $("#progress-bar").setAttribute("aria-valuetext", text);
  // Announce the step and every quarter, not every percent.
  const said = `${running ? STEP_NAMES[job.step] || "" : ""} ${Math.floor(p / 25) * 25}`;
  if (running && said !== state.announced) { state.announced = said; announce(`${text}`); }
}

function setStatus(status) {
  const badge = $("#job-status");
  badge.textContent = status;
  badge.className = `badge ${status}`;
  if (state.job) state.job.status = status;
  const item = document.querySelector(`.job-item[data-id="${state.jobId}"] .meta`);
  if (item && state.job) item.textContent = jobMeta(state.job);
}

function showJobError(error) {
  const box = $("#job-error");
  box.hidden = !error;
  box.textContent = error ? `This job failed: ${error.message || error}` : "";
}

async function selectJob(id, { focus = true } = {}) {
  closeEvents();
  state.jobId = id;
  state.transcript = null;
  state.announced = "";
  if (location.hash !== `#${id}`) history.replaceState(null, "", `#${id}`);
  document.querySelectorAll(".job-item").forEach((i) => {
    i.classList.toggle("selected", i.dataset.id === id);
    if (i.dataset.id === id) i.setAttribute("aria-current", "true"); else i.removeAttribute("aria-current");
  });
  $("#welcome").hidden = true;
  $("#live-view").hidden = true;  // a running live session goes on; its button stops it
  $("#job-view").hidden = false;
  $("#result").hidden = true;
  $("#partial").hidden = true;
  $("#partial-lines").replaceChildren();
  showJobError(null);
  let job;
  try {
    job = await (await api(`/v1/jobs/${id}`)).json();
  } catch (error) {
    showJobError(error);
    return;
  }
  state.job = job;
  $("#job-title").textContent = job.filename;
  setStatus(job.status);
  setProgress(job.status === "finished" ? 100 : job.progress, job);
  loadAudio(id);  // playable at once: the audio is on the server from the start
  if (focus && document.activeElement && document.activeElement.closest("#jobs")) {
    // keep the keyboard where it was; screen readers hear the job through the live region
    announce(`${job.filename}: ${job.status}`);
  }
  if (job.status === "finished") return loadResult(id);
  if (job.status === "failed") return showJobError(job.error);
  if (!TERMINAL.has(job.status)) follow(id);
}

function showPartial(chunks) {
  if (!chunks || !chunks.length) return;
  const list = $("#partial-lines");
  $("#partial").hidden = false;
  for (const chunk of chunks) {
    if (list.querySelector(`[data-chunk="${chunk.index}"]`)) continue;
    const items = chunk.lines.map((line) => el("li", {
      class: "line provisional", dataset: { chunk: chunk.index, start: line.start, end: line.end },
    },
    el("button", { type: "button", class: "ts", "aria-label": `Play from ${clock(line.start)}`,
      onclick: () => seek(line.start) }, clock(line.start)),
    el("span", { class: "who" }, `part ${chunk.index + 1} · ${line.speaker || "?"}`),
    el("span", { class: "text" }, line.text)));
    if (!items.length) items.push(el("li", { class: "line provisional muted", dataset: { chunk: chunk.index } },
      `${clock(chunk.start, 0)}–${clock(chunk.end, 0)}: no speech`));
    const after = [...list.children].find((x) => Number(x.dataset.chunk) > chunk.index);
    items.forEach((item) => list.insertBefore(item, after || null));
  }
}

function follow(id) {
  if (apiKey()) return poll(id); // EventSource cannot send an Authorization header
  const events = new EventSource(`/v1/jobs/${id}/events`);
  state.events = events;
  const data = (e) => JSON.parse(e.data);
  events.addEventListener("progress", (e) => {
    if (state.jobId !== id) return;
    const d = data(e);
    state.job = Object.assign({}, state.job, { chunks: d.chunks, step: d.step, status: d.status,
      started_at: state.job.started_at || Date.now() / 1000 });
    setStatus(d.status);
    setProgress(d.progress, state.job);
  });
  events.addEventListener("chunk", (e) => {
    if (state.jobId !== id) return;
    const d = data(e);
    state.job = Object.assign({}, state.job, { chunks: { completed: d.completed, total: d.total } });
    setProgress(Number($("#progress-text").dataset.percent || 0), state.job);
    showPartial(d.partial);
  });
  events.addEventListener("finished", () => {
    closeEvents();
    if (state.jobId !== id) return;
    setStatus("finished");
    setProgress(100, state.job);
    announce("The transcript is ready.");
    loadResult(id);
    refreshJobs();
  });
  events.addEventListener("failed", (e) => {
    closeEvents();
    if (state.jobId !== id) return;
    setStatus("failed");
    showJobError(data(e).error);
    refreshJobs();
  });
  events.addEventListener("cancelled", () => { closeEvents(); refreshJobs(); });
}

async function poll(id) {
  while (state.jobId === id) {
    let job;
    try { job = await (await api(`/v1/jobs/${id}`)).json(); } catch (error) { showJobError(error); return; }
    state.job = job;
    setStatus(job.status);
    setProgress(job.status === "finished" ? 100 : job.progress, job);
    if (job.status === "finished") return loadResult(id);
    if (job.status === "failed") return showJobError(job.error);
    if (TERMINAL.has(job.status)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function loadResult(id, { keepZoom = false } = {}) {
  const [transcript, corrections] = await Promise.all([
    api(`/v1/jobs/${id}/result?format=json`).then((r) => r.json()),
    api(`/v1/jobs/${id}/corrections`).then((r) => r.json()),
  ]);
  if (state.jobId !== id) return;
  state.transcript = transcript;
  state.corrections = corrections.data.length;
  $("#partial").hidden = true;
  $("#result").hidden = false;
  renderSpeakers();
  if (!keepZoom) state.pxPerSecond = null;
  renderTimeline();
  renderTranscript();
  renderDownloads(id);
}

async function loadAudio(id) {
  const player = $("#player");
  if (state.lastJobId === id) return;
  state.lastJobId = id;
  if (apiKey()) {
    const blob = await (await api(`/v1/jobs/${id}/audio`)).blob();
    player.src = URL.createObjectURL(blob);
  } else {
    player.src = `/v1/jobs/${id}/audio`;
  }
}

// ---------------------------------------------------------------- player

function seek(seconds) {
  const player = $("#player");
  player.currentTime = seconds + 0.01;
  highlight();
  movePlayhead();
  player.play().catch(() => { /* autoplay may be refused; seeking still happened */ });
}

function highlight() {
  const now = $("#player").currentTime;
  let active = null;
  document.querySelectorAll("#transcript .line").forEach((line) => {
    const on = now >= Number(line.dataset.start) && now < Number(line.dataset.end);
    line.classList.toggle("active", on);
    if (on) active = line;
  });
  const box = $("#transcript");
  if (active && !$("#player").paused && !box.contains(document.activeElement)) {
    active.scrollIntoView({ block: "nearest" });
  }
}

function renderDownloads(id) {
  const box = $("#downloads");
  box.replaceChildren(...FORMATS.map(([fmt, label]) => el("a", {
    href: `/v1/jobs/${id}/result?format=${fmt}&download=true`, download: "", dataset: { format: fmt },
  }, label)));
}

function setupPlayer() {
  const player = $("#player");
  player.addEventListener("timeupdate", () => { highlight(); movePlayhead(); followPlayhead(); });
  player.addEventListener("seeked", () => { highlight(); movePlayhead(); followPlayhead(); });
}

async function deleteJob() {
  if (!state.jobId || !confirm("Delete this job and its audio?")) return;
  const id = state.jobId;
  closeEvents();
  try { await api(`/v1/jobs/${id}`, { method: "DELETE" }); } catch (error) { showJobError(error); return; }
  state.jobId = null;
  state.lastJobId = null;
  $("#player").removeAttribute("src");
  $("#job-view").hidden = true;
  $("#welcome").hidden = false;
  history.replaceState(null, "", location.pathname);
  await refreshJobs();
  $("#file-input").focus();
}

// ---------------------------------------------------------------- start

window.addEventListener("DOMContentLoaded", async () => {
  setupDrop();
  setupZoom();
  setupPlayer();
  setupEditing();
  $("#delete-job").addEventListener("click", deleteJob);
  await refreshJobs();
  const fromHash = location.hash.slice(1);
  if (fromHash && fromHash !== "job-view") selectJob(fromHash, { focus: false });
});
window.saywho = { state, selectJob, refreshJobs };
