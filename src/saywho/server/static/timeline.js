// saywho dashboard: the timeline. One row per speaker, labels in their own column
// (outside the scrolled plot, so they never cover a turn), "fit" shows the whole
// recording, the ruler's unit follows the zoom, the playhead is followed while playing.
// Keyboard: one tab stop; arrows move between turns (left/right in time, up/down
// between speakers), Enter plays from a turn, + and - zoom.
"use strict";

const TICK_STEPS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
const MIN_TICK_PX = 64;

function timelineTurns() {
  const t = state.transcript;
  if (t.diarization && t.diarization.turns.length) return t.diarization.turns;
  return t.segments.filter((s) => s.speaker).map((s) => ({ start: s.start, end: s.end, speaker: s.speaker }));
}

function fitPxPerSecond() {
  const box = $("#timeline");
  return Math.max(0.001, (box.clientWidth - 2) / Math.max(state.transcript.duration, 0.1));
}

function renderTimeline() {
  const box = $("#timeline");
  const duration = Math.max(state.transcript.duration, 0.1);
  if (!state.pxPerSecond) state.pxPerSecond = fitPxPerSecond();
  const pps = state.pxPerSecond;
  const width = Math.floor(duration * pps);
  const canvas = el("div", { class: "canvas", style: { width: `${width}px` } });
  const ruler = el("div", { class: "ruler", "aria-hidden": "true" });
  const step = TICK_STEPS.find((s) => s * pps >= MIN_TICK_PX) || 7200;
  // the last label must fit inside the plot, or "fit" would scroll
  for (let t = 0; t <= duration + 1e-6 && (t === 0 || t * pps <= width - 36); t += step) {
    ruler.append(el("span", { class: "tick", style: { left: `${t * pps}px` } }, clock(t, step < 1 ? 1 : 0)));
  }
  canvas.append(ruler);
  const labels = $("#timeline-labels");
  labels.replaceChildren(el("li", { class: "ruler-spacer" }));
  const turns = timelineTurns();
  const focusedTurn = document.activeElement && document.activeElement.closest("#timeline .turn");
  const focusKey = focusedTurn ? `${focusedTurn.dataset.speaker}@${focusedTurn.dataset.start}` : null;
  for (const s of state.transcript.speakers) {
    labels.append(el("li", { class: "row-label", title: s.display }, swatch(s.label), " ", s.display));
    const row = el("div", { class: "row", dataset: { label: s.label } });
    for (const turn of turns.filter((x) => x.speaker === s.label)) {
      row.append(el("button", {
        type: "button", class: "turn", tabindex: "-1",
        "aria-label": `${s.display}, ${clock(turn.start, 0)} to ${clock(turn.end, 0)}`,
        title: `${s.display} ${clock(turn.start)}–${clock(turn.end)}`,
        dataset: { start: turn.start, end: turn.end, speaker: s.label },
        style: { left: `${turn.start * pps}px`, width: `${Math.max(2, (turn.end - turn.start) * pps)}px`,
          background: colourOf(s.label) },
        onclick: () => seek(turn.start),
      }));
    }
    canvas.append(row);
  }
  canvas.append(el("div", { class: "playhead", id: "playhead" }));
  box.replaceChildren(canvas);
  box.dataset.pxPerSecond = String(pps);
  const all = [...box.querySelectorAll(".turn")];
  const again = focusKey && all.find((b) => `${b.dataset.speaker}@${b.dataset.start}` === focusKey);
  const current = again || all.sort((a, b) => a.dataset.start - b.dataset.start)[0];
  if (current) current.tabIndex = 0;
  if (again) again.focus({ preventScroll: true });
  movePlayhead();
}

function zoom(factor) {
  const box = $("#timeline");
  const centre = (box.scrollLeft + box.clientWidth / 2) / state.pxPerSecond;
  const fit = fitPxPerSecond();
  state.pxPerSecond = Math.min(400, Math.max(fit, state.pxPerSecond * factor));
  renderTimeline();
  box.scrollLeft = centre * state.pxPerSecond - box.clientWidth / 2;
}

function turnsInTimeOrder() {
  return [...$("#timeline").querySelectorAll(".turn")].sort((a, b) => a.dataset.start - b.dataset.start);
}

function focusTurn(turn) {
  if (!turn) return;
  $("#timeline").querySelectorAll(".turn[tabindex='0']").forEach((t) => { t.tabIndex = -1; });
  turn.tabIndex = 0;
  turn.focus();
}

function timelineKeys(e) {
  const turn = e.target.closest(".turn");
  if (e.key === "+" || e.key === "=") { zoom(2); e.preventDefault(); return; }
  if (e.key === "-") { zoom(0.5); e.preventDefault(); return; }
  if (!turn) return;
  const ordered = turnsInTimeOrder();
  const i = ordered.indexOf(turn);
  let next = null;
  if (e.key === "ArrowRight") next = ordered[i + 1];
  else if (e.key === "ArrowLeft") next = ordered[i - 1];
  else if (e.key === "Home") next = ordered[0];
  else if (e.key === "End") next = ordered[ordered.length - 1];
  else if (e.key === "ArrowUp" || e.key === "ArrowDown") {
    const rows = [...$("#timeline").querySelectorAll(".row")];
    const row = rows[rows.indexOf(turn.parentElement) + (e.key === "ArrowUp" ? -1 : 1)];
    if (row) {
      const at = Number(turn.dataset.start);
      next = [...row.querySelectorAll(".turn")].sort((a, b) => Math.abs(a.dataset.start - at)
        - Math.abs(b.dataset.start - at))[0];
    }
  } else return;
  e.preventDefault();
  focusTurn(next);
}

function setupZoom() {
  $("#zoom-in").addEventListener("click", () => zoom(2));
  $("#zoom-out").addEventListener("click", () => zoom(0.5));
  $("#zoom-fit").addEventListener("click", () => { state.pxPerSecond = null; renderTimeline(); });
  const box = $("#timeline");
  box.addEventListener("keydown", timelineKeys);
  box.addEventListener("wheel", (e) => {
    if (!e.ctrlKey && !e.metaKey) return;
    e.preventDefault();
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15);
  }, { passive: false });
  window.addEventListener("resize", () => {
    if (state.transcript && state.pxPerSecond && state.pxPerSecond < fitPxPerSecond()) {
      state.pxPerSecond = null;
      renderTimeline();
    }
  });
}

function movePlayhead() {
  const head = $("#playhead");
  if (head && state.pxPerSecond) head.style.left = `${$("#player").currentTime * state.pxPerSecond}px`;
}

function followPlayhead() {
  // Keep the playhead in view while playing (not while the user scrolls a paused player).
  const box = $("#timeline");
  if (!state.transcript || !state.pxPerSecond || $("#player").paused) return;
  const x = $("#player").currentTime * state.pxPerSecond;
  if (x < box.scrollLeft || x > box.scrollLeft + box.clientWidth - 20) {
    box.scrollTo({ left: Math.max(0, x - box.clientWidth / 4), behavior: "smooth" });
  }
}
