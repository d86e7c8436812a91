// saywho dashboard, Live mode: the microphone -> WS /v1/realtime (OpenAI Realtime transcription
// events, PCM16 at 24 kHz in base64) -> lines with speaker colours as they come; speakers can be
// named while the session runs (saywho.speaker.update); Stop ends the session with
// saywho.session.finish, and the recording becomes a job (saywho.job.created), which opens.
// Uses app.js's helpers ($, el, clock, paletteColour, announce, apiKey, refreshJobs, selectJob).
"use strict";

const LIVE_RATE = 24000;
const LIVE_EVENT = "conversation.item.input_audio_transcription";

const live = {
  ws: null, ctx: null, stream: null, node: null, timer: null, started: 0,
  speakers: [], // [{label, name}] in order of first appearance (their colours)
  pending: new Map(), // item_id -> text heard so far (stable + tentative)
  finishing: false,
};

function liveRunning() { return live.ws !== null; }

function liveSpeaker(label) {
  let i = live.speakers.findIndex((s) => s.label === label);
  if (i < 0) { live.speakers.push({ label, name: null }); i = live.speakers.length - 1; renderLiveSpeakers(); }
  return i;
}

function liveDisplay(label) {
  const s = live.speakers.find((x) => x.label === label);
  return (s && s.name) || label;
}

function liveSwatch(label) {
  const i = liveSpeaker(label);
  return el("span", { class: "swatch", "aria-hidden": "true", style: { background: paletteColour(i) } }, String(i + 1));
}

function liveStatus(text) { $("#live-state").textContent = text; }

function liveError(message) {
  const box = $("#live-error");
  box.textContent = message || "";
  box.hidden = !message;
}

function renderLiveSpeakers() {
  const list = $("#live-speakers");
  const focusedLabel = document.activeElement && document.activeElement.closest("#live-speakers")
    ? document.activeElement.dataset.label : null;
  list.replaceChildren(...live.speakers.map((s, i) => {
    const id = `live-name-${i}`;
    const input = el("input", { id, type: "text", value: s.name || "", placeholder: s.label, autocomplete: "off",
      dataset: { label: s.label }, "aria-describedby": "live-speakers-title" });
    const save = () => {
      const name = input.value.trim();
      if ((name || null) === (s.name || null)) return;
      liveSend({ type: "saywho.speaker.update", label: s.label, name: name || null });
    };
    input.addEventListener("change", save);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); save(); } });
    return el("li", { class: "speaker", dataset: { label: s.label } },
      el("span", { class: "swatch", "aria-hidden": "true", style: { background: paletteColour(i) } }, String(i + 1)),
      el("label", { for: id }, `Name of ${s.label}`), input);
  }));
  if (focusedLabel) { const again = list.querySelector(`input[data-label="${focusedLabel}"]`); if (again) again.focus(); }
}

function renameLiveLines() {
  document.querySelectorAll("#live-lines .line").forEach((line) => {
    line.querySelector(".who .name").textContent = liveDisplay(line.dataset.speaker);
  });
}

function addLiveSegment(e) {
  if (!e.text) return; // speech without words (a backchannel under another voice): no line
  const label = e.speaker_label || e.speaker;
  const i = liveSpeaker(label);
  const s = live.speakers[i];
  if (e.name && !s.name) { s.name = e.name; renderLiveSpeakers(); }
  const list = $("#live-lines");
  list.append(el("li", {
    class: "line", dataset: { item: e.item_id, speaker: label, start: e.start, end: e.end },
    style: { borderLeftColor: paletteColour(i) },
  },
  el("span", { class: "ts" }, clock(e.start)),
  el("span", { class: "who" }, liveSwatch(label), " ", el("span", { class: "name" }, liveDisplay(label))),
  el("span", { class: "text" }, e.text)));
  list.scrollTop = list.scrollHeight;
}

function showHeard() {
  $("#live-now").textContent = [...live.pending.values()].join(" … ");
}

function onLiveEvent(e) {
  switch (e.type) {
    case "session.created":
    case "session.updated":
      break;
    case "input_audio_buffer.speech_started":
      live.pending.set(e.item_id, "");
      break;
    case `${LIVE_EVENT}.delta`:
      live.pending.set(e.item_id, e.partial !== undefined ? e.partial : (live.pending.get(e.item_id) || "") + e.delta);
      if (e.lag_s > 2) liveStatus(`Listening · behind the audio by ${e.lag_s.toFixed(1)} s`);
      showHeard();
      break;
    case `${LIVE_EVENT}.segment`:
      if (live.pending.delete(e.item_id)) showHeard();
      addLiveSegment(e);
      break;
    case `${LIVE_EVENT}.completed`:
      // The item's speaker segments follow; until they come, its final text stays shown.
      if (e.transcript) live.pending.set(e.item_id, e.transcript); else live.pending.delete(e.item_id);
      showHeard();
      break;
    case "saywho.speakers.updated":
      for (const row of e.speakers) { live.speakers[liveSpeaker(row.label)].name = row.name; }
      renderLiveSpeakers();
      renameLiveLines();
      announce("Speaker renamed.");
      break;
    case "saywho.job.created":
      liveJobCreated(e.job_id);
      break;
    case "error":
      liveError(e.error.message);
      if (live.finishing) closeLive("The session ended.");
      break;
    default:
      break;
  }
}

function liveSend(event) {
  if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify(event));
}

function pcm16Base64(floats) {
  const pcm = new Int16Array(floats.length);
  for (let i = 0; i < floats.length; i++) pcm[i] = Math.max(-1, Math.min(1, floats[i])) * 32767;
  const bytes = new Uint8Array(pcm.buffer);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

async function startLive() {
  liveError("");
  if (!navigator.mediaDevices || !window.AudioContext) {
    liveError("This browser cannot use the microphone here (it needs https or localhost).");
    return;
  }
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch (error) {
    liveError(`No microphone: ${error.message}`);
    return;
  }
  $("#welcome").hidden = true;
  $("#job-view").hidden = true;
  $("#live-view").hidden = false;
  $("#live-lines").replaceChildren();
  live.speakers = [];
  live.pending.clear();
  renderLiveSpeakers();
  showHeard();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const protocols = ["realtime"].concat(apiKey() ? [`openai-insecure-api-key.${apiKey()}`] : []);
  const ws = new WebSocket(`${scheme}://${location.host}/v1/realtime`, protocols);
  live.ws = ws;
  live.finishing = false;
  ws.onmessage = (m) => onLiveEvent(JSON.parse(m.data));
  ws.onclose = () => { if (live.ws === ws) closeLive(live.finishing ? "" : "The connection to the server closed."); };
  ws.onopen = () => {
    const language = $("#opt-language").value.trim();
    liveSend({ type: "session.update", session: { type: "transcription", audio: { input: {
      format: { type: "audio/pcm", rate: LIVE_RATE },
      transcription: language ? { language } : {},
      turn_detection: { type: "server_vad", silence_duration_ms: 500 } } } } });
    // The browser resamples the microphone to 24 kHz; ~85 ms of audio per append.
    live.ctx = new AudioContext({ sampleRate: LIVE_RATE });
    const source = live.ctx.createMediaStreamSource(live.stream);
    live.node = live.ctx.createScriptProcessor(2048, 1, 1);
    live.node.onaudioprocess = (e) => {
      if (!live.finishing) liveSend({ type: "input_audio_buffer.append", audio: pcm16Base64(e.inputBuffer.getChannelData(0)) });
    };
    const mute = live.ctx.createGain();
    mute.gain.value = 0; // the processor must reach the destination to run; nothing is heard
    source.connect(live.node);
    live.node.connect(mute);
    mute.connect(live.ctx.destination);
    live.started = Date.now();
    live.timer = setInterval(() => { $("#live-time").textContent = clock((Date.now() - live.started) / 1000, 0); }, 250);
    $("#live-badge").textContent = "live";
    $("#live-badge").className = "badge running";
    liveStatus("Listening…");
    announce("Live transcription started.");
  };
  const button = $("#live");
  button.textContent = "■ Stop live";
  button.setAttribute("aria-pressed", "true");
  button.classList.add("recording");
}

function stopAudio() {
  if (live.node) { live.node.onaudioprocess = null; live.node.disconnect(); live.node = null; }
  if (live.ctx) { live.ctx.close(); live.ctx = null; }
  if (live.stream) { live.stream.getTracks().forEach((t) => t.stop()); live.stream = null; }
  clearInterval(live.timer);
}

function stopLive() {
  // The server transcribes what is pending, then answers saywho.job.created.
  stopAudio();
  live.finishing = true;
  liveStatus("Finishing: the last words, then the recording becomes a job…");
  $("#live").disabled = true;
  liveSend({ type: "saywho.session.finish" });
  // Under a second of audio (or keep_audio off) makes no job: nothing more will come.
  setTimeout(() => { if (live.finishing && live.ws) closeLive("The session ended; no recording was kept."); }, 60000);
}

function closeLive(message) {
  const ws = live.ws;
  live.ws = null;
  stopAudio();
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
  const button = $("#live");
  button.disabled = false;
  button.textContent = "◉ Live";
  button.setAttribute("aria-pressed", "false");
  button.classList.remove("recording");
  $("#live-badge").textContent = "ended";
  $("#live-badge").className = "badge";
  if (message) liveStatus(message);
}

async function liveJobCreated(jobId) {
  closeLive(`The recording is job ${jobId}: the offline pipeline refines its transcript.`);
  announce("The live session ended; its recording is a job now.");
  await refreshJobs();
  selectJob(jobId, { focus: false });
}

window.addEventListener("DOMContentLoaded", () => {
  $("#live").addEventListener("click", () => {
    if (live.finishing && live.ws) return;
    if (liveRunning()) stopLive(); else startLive();
  });
});
window.saywhoLive = { live, running: liveRunning };
