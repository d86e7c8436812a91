// saywho dashboard: plain JavaScript, no build step, no CDN. Talks to /v1/jobs only.
"use strict";

const FORMATS = [
  ["srt", "SRT"], ["vtt", "WebVTT"], ["txt", "Text"], ["json", "JSON"],
  ["diarized_json", "Diarized JSON"], ["rttm", "RTTM"],
];
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22"];
const TERMINAL = new Set(["finished", "failed", "cancelled"]);

const state = {
  jobId: null, job: null, transcript: null, events: null, poller: null,
  pxPerSecond: null, lastJobId: null, recorder: null,
};

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
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

// ---------------------------------------------------------------- formatting

function clock(seconds) {
  const t = Math.max(0, seconds);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
  const ss = s.toFixed(1).padStart(4, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function colourOf(label) {
  const speakers = state.transcript ? state.transcript.speakers : [];
  const i = speakers.findIndex((s) => s.label === label);
  return COLOURS[(i < 0 ? 0 : i) % COLOURS.length];
}

function displayOf(label) {
  const s = (state.transcript ? state.transcript.speakers : []).find((x) => x.label === label);
  return s ? (s.display || s.label) : (label || "—");
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
    $("#upload-status").textContent = "";
    await refreshJobs();
    selectJob(job.id);
  } catch (error) {
    $("#upload-status").textContent = "";
    showUploadError(`Could not start a job for ${file.name}: ${error.message}`);
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
  const timer = setInterval(() => { $("#record-time").textContent = clock((Date.now() - started) / 1000); }, 200);
  recorder.ondataavailable = (e) => { if (e.data.size) parts.push(e.data); };
  recorder.onstop = () => {
    clearInterval(timer);
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    button.textContent = "● Record";
    button.classList.remove("recording");
    $("#record-time").hidden = true;
    const type = recorder.mimeType || "audio/webm";
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    upload(new File(parts, `recording-${stamp}.${ext}`, { type }));
  };
  state.recorder = recorder;
  recorder.start(1000);
  button.textContent = "■ Stop";
  button.classList.add("recording");
  $("#record-time").hidden = false;
}

// ---------------------------------------------------------------- job list

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
  list.replaceChildren();
  if (!page.data.length) list.append(el("li", { class: "muted empty" }, "No jobs yet."));
  for (const job of page.data) {
    const percent = job.status === "finished" ? 100 : job.progress;
    const item = el("li", { class: `job-item${job.id === state.jobId ? " selected" : ""}`, dataset: { id: job.id },
      onclick: () => selectJob(job.id) },
      el("span", { class: "name", title: job.filename }, job.filename),
      el("span", { class: "meta" }, `${job.status} · ${job.duration ? clock(job.duration) : "?"}`
        + (job.status === "running" ? ` · ${Math.floor(percent)}%` : "")),
      el("div", { class: "mini" }, el("div", { style: { width: `${percent}%` } })));
    list.append(item);
  }
  const active = page.data.some((j) => !TERMINAL.has(j.status));
  clearTimeout(state.poller);
  state.poller = setTimeout(refreshJobs, active ? 2000 : 10000);
}

// ---------------------------------------------------------------- one job

function closeEvents() {
  if (state.events) { state.events.close(); state.events = null; }
}

function setProgress(percent, job) {
  const p = Math.max(0, Math.min(100, percent));
  $("#progress-fill").style.width = `${p}%`;
  const chunks = job && job.chunks && job.chunks.total ? ` · chunk ${job.chunks.completed}/${job.chunks.total}` : "";
  $("#progress-text").textContent = `${Math.floor(p)}%${chunks}`;
  $("#progress-text").dataset.percent = String(p);
}

function setStatus(status) {
  const badge = $("#job-status");
  badge.textContent = status;
  badge.className = `badge ${status}`;
  document.querySelectorAll(".job-item").forEach((item) => {
    if (item.dataset.id === state.jobId) item.querySelector(".meta").textContent = status;
  });
}

function showJobError(error) {
  const box = $("#job-error");
  box.hidden = !error;
  box.textContent = error ? `This job failed: ${error.message || error}` : "";
}

async function selectJob(id) {
  closeEvents();
  state.jobId = id;
  state.transcript = null;
  if (location.hash !== `#${id}`) history.replaceState(null, "", `#${id}`);
  document.querySelectorAll(".job-item").forEach((i) => i.classList.toggle("selected", i.dataset.id === id));
  $("#welcome").hidden = true;
  $("#job-view").hidden = false;
  $("#result").hidden = true;
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
  if (job.status === "finished") return loadResult(id);
  if (job.status === "failed") return showJobError(job.error);
  if (!TERMINAL.has(job.status)) follow(id);
}

function follow(id) {
  if (apiKey()) return poll(id); // EventSource cannot send an Authorization header
  const events = new EventSource(`/v1/jobs/${id}/events`);
  state.events = events;
  const data = (e) => JSON.parse(e.data);
  events.addEventListener("progress", (e) => {
    if (state.jobId !== id) return;
    const d = data(e);
    state.job = Object.assign({}, state.job, { chunks: d.chunks });
    setStatus(d.status);
    setProgress(d.progress, state.job);
  });
  events.addEventListener("chunk", (e) => {
    if (state.jobId !== id) return;
    const d = data(e);
    state.job = Object.assign({}, state.job, { chunks: { completed: d.completed, total: d.total } });
    setProgress(Number($("#progress-text").dataset.percent || 0), state.job);
  });
  events.addEventListener("finished", () => {
    closeEvents();
    if (state.jobId !== id) return;
    setStatus("finished");
    setProgress(100, state.job);
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
    setStatus(job.status);
    setProgress(job.status === "finished" ? 100 : job.progress, job);
    if (job.status === "finished") return loadResult(id);
    if (job.status === "failed") return showJobError(job.error);
    if (TERMINAL.has(job.status)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function loadResult(id) {
  const transcript = await (await api(`/v1/jobs/${id}/result?format=json`)).json();
  if (state.jobId !== id) return;
  state.transcript = transcript;
  $("#result").hidden = false;
  loadAudio(id);
  renderSpeakers();
  state.pxPerSecond = null;
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

// ---------------------------------------------------------------- speakers

function renderSpeakers() {
  const list = $("#speakers");
  list.replaceChildren();
  for (const s of state.transcript.speakers) {
    const name = el("span", { class: "name", title: `${s.label}: click to rename`, tabindex: "0" }, s.display);
    const item = el("li", { class: "speaker", dataset: { label: s.label } },
      el("span", { class: "swatch", style: { background: colourOf(s.label) } }), name,
      el("span", { class: "talk" }, clock(s.speech_s || 0)));
    const edit = () => startRename(item, s);
    name.addEventListener("click", edit);
    name.addEventListener("keydown", (e) => { if (e.key === "Enter") edit(); });
    list.append(item);
  }
}

function startRename(item, speaker) {
  if (item.querySelector("input")) return;
  const input = el("input", { type: "text", value: speaker.name || "", placeholder: speaker.label,
    "aria-label": `Name for ${speaker.label}` });
  const remember = el("input", { type: "checkbox" });
  const form = el("form", { class: "rename" }, input, " ",
    el("label", { title: "Also add this voice to the speaker library" }, remember, " remember voice"));
  const name = item.querySelector(".name");
  name.hidden = true;
  name.after(form);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    if (save) {
      try {
        await api(`/v1/jobs/${state.jobId}/speakers/${encodeURIComponent(speaker.label)}`, {
          method: "PUT", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ name: input.value.trim(), enrol: remember.checked }),
        });
        return loadResult(state.jobId);
      } catch (error) {
        showJobError({ message: `could not rename ${speaker.label}: ${error.message}` });
      }
    }
    form.remove();
    name.hidden = false;
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); finish(true); });
  input.addEventListener("keydown", (e) => { if (e.key === "Escape") finish(false); });
  form.addEventListener("focusout", () => setTimeout(() => {
    if (!form.contains(document.activeElement)) finish(input.value.trim() !== (speaker.name || ""));
  }, 0));
}

// ---------------------------------------------------------------- timeline

function timelineTurns() {
  const t = state.transcript;
  if (t.diarization && t.diarization.turns.length) return t.diarization.turns;
  return t.segments.filter((s) => s.speaker).map((s) => ({ start: s.start, end: s.end, speaker: s.speaker }));
}

function renderTimeline() {
  const box = $("#timeline");
  const duration = Math.max(state.transcript.duration, 0.1);
  if (!state.pxPerSecond) state.pxPerSecond = Math.max(1, (box.clientWidth - 4) / duration);
  const width = Math.ceil(duration * state.pxPerSecond);
  const canvas = el("div", { class: "canvas", style: { width: `${width}px` } });
  const ruler = el("div", { class: "ruler" });
  const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
    .find((s) => s * state.pxPerSecond >= 70) || 3600;
  for (let t = 0; t <= duration; t += step) {
    ruler.append(el("span", { class: "tick", style: { left: `${t * state.pxPerSecond}px` } }, clock(t)));
  }
  canvas.append(ruler);
  const turns = timelineTurns();
  for (const s of state.transcript.speakers) {
    const row = el("div", { class: "row", dataset: { label: s.label } },
      el("span", { class: "row-label", style: { color: colourOf(s.label) } }, s.display));
    for (const turn of turns.filter((x) => x.speaker === s.label)) {
      row.append(el("div", {
        class: "turn", title: `${s.display} ${clock(turn.start)}–${clock(turn.end)}`,
        dataset: { start: turn.start, speaker: s.label },
        style: { left: `${turn.start * state.pxPerSecond}px`,
          width: `${Math.max(2, (turn.end - turn.start) * state.pxPerSecond)}px`, background: colourOf(s.label) },
        onclick: () => seek(turn.start),
      }));
    }
    canvas.append(row);
  }
  canvas.append(el("div", { class: "playhead", id: "playhead" }));
  box.replaceChildren(canvas);
  box.dataset.pxPerSecond = String(state.pxPerSecond);
  movePlayhead();
}

function zoom(factor) {
  const box = $("#timeline");
  const centre = (box.scrollLeft + box.clientWidth / 2) / state.pxPerSecond;
  state.pxPerSecond = Math.min(400, Math.max(0.05, state.pxPerSecond * factor));
  renderTimeline();
  box.scrollLeft = centre * state.pxPerSecond - box.clientWidth / 2;
}

function setupZoom() {
  $("#zoom-in").addEventListener("click", () => zoom(2));
  $("#zoom-out").addEventListener("click", () => zoom(0.5));
  $("#zoom-fit").addEventListener("click", () => { state.pxPerSecond = null; renderTimeline(); });
  $("#timeline").addEventListener("wheel", (e) => {
    if (!e.ctrlKey && !e.metaKey) return;
    e.preventDefault();
    zoom(e.deltaY < 0 ? 1.25 : 0.8);
  }, { passive: false });
}

function movePlayhead() {
  const head = $("#playhead");
  if (head && state.pxPerSecond) head.style.left = `${$("#player").currentTime * state.pxPerSecond}px`;
}

// ---------------------------------------------------------------- transcript & player

function renderTranscript() {
  const box = $("#transcript");
  box.replaceChildren();
  for (const seg of state.transcript.segments) {
    box.append(el("div", {
      class: "line", dataset: { start: seg.start, end: seg.end, speaker: seg.speaker || "" },
      style: { borderLeftColor: seg.speaker ? colourOf(seg.speaker) : "transparent" },
      onclick: () => seek(seg.start),
    },
    el("span", { class: "ts" }, clock(seg.start)),
    el("span", { class: "who", style: { color: seg.speaker ? colourOf(seg.speaker) : "inherit" } },
      seg.speaker ? displayOf(seg.speaker) : ""),
    el("span", { class: "text" }, seg.text.trim())));
  }
  highlight();
}

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
  if (active && !$("#player").paused) active.scrollIntoView({ block: "nearest" });
}

function renderDownloads(id) {
  const box = $("#downloads");
  box.replaceChildren(...FORMATS.map(([fmt, label]) => el("a", {
    href: `/v1/jobs/${id}/result?format=${fmt}&download=true`, download: "", dataset: { format: fmt },
  }, label)));
}

function setupPlayer() {
  const player = $("#player");
  player.addEventListener("timeupdate", () => { highlight(); movePlayhead(); });
  player.addEventListener("seeked", () => { highlight(); movePlayhead(); });
}

async function deleteJob() {
  if (!state.jobId || !confirm("Delete this job and its audio?")) return;
  const id = state.jobId;
  closeEvents();
  try { await api(`/v1/jobs/${id}`, { method: "DELETE" }); } catch (error) { showJobError(error); return; }
  state.jobId = null;
  state.lastJobId = null;
  $("#job-view").hidden = true;
  $("#welcome").hidden = false;
  history.replaceState(null, "", location.pathname);
  refreshJobs();
}

// ---------------------------------------------------------------- start

window.addEventListener("DOMContentLoaded", async () => {
  setupDrop();
  setupZoom();
  setupPlayer();
  $("#delete-job").addEventListener("click", deleteJob);
  await refreshJobs();
  const fromHash = location.hash.slice(1);
  if (fromHash) selectJob(fromHash);
});
window.saywho = { state, selectJob, refreshJobs };
