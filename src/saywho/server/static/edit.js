// saywho dashboard: speakers and the transcript, and correcting them. Rename a speaker,
// merge two speakers, move a line (or some of its words) to another speaker, split a
// line; undo (the Undo button or Ctrl+Z, last first, renames included). Every correction
// is stored on the server (POST /v1/jobs/{id}/corrections), so every export and the
// speaker library follow it.
"use strict";

// ---------------------------------------------------------------- speakers

function renderSpeakers() {
  const list = $("#speakers");
  list.replaceChildren();
  for (const s of state.transcript.speakers) {
    const name = el("button", { type: "button", class: "name", "aria-label": `${s.display}: rename`,
      title: s.name ? `${s.label}: rename` : "rename" }, s.display);
    const item = el("li", { class: "speaker", dataset: { label: s.label } },
      swatch(s.label), name, el("span", { class: "talk" }, clock(s.speech_s || 0, 0)));
    name.addEventListener("click", () => startRename(item, s));
    list.append(item);
  }
  const options = () => state.transcript.speakers.map((s) => el("option", { value: s.label }, s.display));
  const source = $("#merge-source"), target = $("#merge-target");
  const [keepSource, keepTarget] = [source.value, target.value];
  source.replaceChildren(...options());
  target.replaceChildren(...options());
  const labels = state.transcript.speakers.map((s) => s.label);
  source.value = labels.includes(keepSource) ? keepSource : (labels[1] || labels[0] || "");
  target.value = labels.includes(keepTarget) && keepTarget !== source.value ? keepTarget : (labels[0] || "");
  $("#merge").hidden = labels.length < 2 && !state.corrections;
  $("#undo").disabled = !state.corrections;
  $("#undo").textContent = state.corrections ? `Undo (${state.corrections})` : "Undo";
  $("#undo").setAttribute("aria-keyshortcuts", "Control+Z");
}

function focusSpeaker(label) {
  const button = document.querySelector(`#speakers .speaker[data-label="${CSS.escape(label)}"] .name`);
  if (button) button.focus();
}

function startRename(item, speaker) {
  if (item.querySelector("form")) return;
  const input = el("input", { type: "text", value: speaker.name || "", placeholder: speaker.label,
    "aria-label": `Name for ${speaker.label}`, maxlength: "100" });
  const remember = el("input", { type: "checkbox", id: `remember-${speaker.label}` });
  const save = el("button", { type: "button", class: "button small" }, "Save");
  const cancel = el("button", { type: "button", class: "button small secondary" }, "Cancel");
  const form = el("form", { class: "rename", "aria-label": `Rename ${speaker.label}` }, input, " ",
    el("label", { for: `remember-${speaker.label}`, title: "Also add this voice to the speaker library" },
      remember, " remember voice"), " ", save, " ", cancel);
  const name = item.querySelector(".name");
  name.hidden = true;
  name.after(form);
  input.focus();
  input.select();
  let done = false;
  const finish = async (saving, { refocus = true } = {}) => {
    if (done) return;
    done = true;
    const value = input.value.trim();
    if (saving && (value !== (speaker.name || "") || remember.checked)) {
      try {
        const answer = await postJSON(`/v1/jobs/${state.jobId}/speakers/${encodeURIComponent(speaker.label)}`,
          { name: value, enrol: remember.checked }, "PUT");
        await loadResult(state.jobId, { keepZoom: true });
        announce(value ? `${speaker.label} is now ${value}${answer.enrolled ? ", voice remembered" : ""}.`
          : `${speaker.label} has no name now.`);
        if (refocus) focusSpeaker(speaker.label);
        return;
      } catch (error) {
        showJobError({ message: `could not rename ${speaker.label}: ${error.message}` });
      }
    }
    form.remove();
    name.hidden = false;
    if (refocus) name.focus();
  };
  // Enter in the field saves; the form never submits by itself (an Enter that opened
  // the editor must not also save it).
  form.addEventListener("submit", (e) => e.preventDefault());
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); finish(true); }
    if (e.key === "Escape") { e.preventDefault(); finish(false); }
  });
  save.addEventListener("click", () => finish(true));
  cancel.addEventListener("click", () => finish(false));
  form.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); finish(false); } });
  form.addEventListener("focusout", () => setTimeout(() => {
    if (!done && !form.contains(document.activeElement)) finish(true, { refocus: false });
  }, 0));
}

// ---------------------------------------------------------------- corrections

async function correct(edit, message) {
  const id = state.jobId;
  try {
    await postJSON(`/v1/jobs/${id}/corrections`, edit);
  } catch (error) {
    showJobError({ message: `could not correct: ${error.message}` });
    return false;
  }
  await loadResult(id, { keepZoom: true });
  announce(`${message}. Undo is available.`);
  return true;
}

async function undo() {
  const id = state.jobId;
  let answer;
  try {
    answer = await postJSON(`/v1/jobs/${id}/corrections/last`, undefined, "DELETE");
  } catch (error) {
    showJobError({ message: `could not undo: ${error.message}` });
    return;
  }
  await loadResult(id, { keepZoom: true });
  announce(answer.undone ? `Undone: ${undoneText(answer.undone)}.` : "Nothing to undo.");
  if ($("#undo").disabled && document.activeElement === $("#undo")) $("#merge button[type=submit]").focus();
}

function undoneText(edit) {
  if (edit.op === "rename") return `the name of ${edit.label}`;
  if (edit.op === "merge") return `the merge of ${edit.source} into ${edit.target}`;
  if (edit.op === "split") return `the split of line ${edit.line + 1}`;
  return `the move of line ${edit.line + 1} to ${edit.target}`;
}

function undoKey(e) {
  // Ctrl+Z (Cmd+Z) undoes the last correction, except where it edits text.
  if (!(e.ctrlKey || e.metaKey) || e.shiftKey || e.altKey || e.key.toLowerCase() !== "z") return;
  if (e.target.closest("input, textarea, select, [contenteditable='true']")) return;
  if ($("#result").hidden || $("#undo").disabled) return;
  e.preventDefault();
  undo();
}

function setupEditing() {
  $("#merge").addEventListener("submit", async (e) => {
    e.preventDefault();
    const source = $("#merge-source").value, target = $("#merge-target").value;
    if (!source || source === target) { announce("Choose two different speakers to merge."); return; }
    await correct({ op: "merge", source, target }, `Merged ${displayOf(source)} into ${displayOf(target)}`);
  });
  $("#undo").addEventListener("click", undo);
  document.addEventListener("keydown", undoKey);
  const box = $("#transcript");
  box.addEventListener("keydown", transcriptKeys);
  box.addEventListener("click", (e) => {
    const line = e.target.closest(".line");
    if (!line || e.target.closest("button, select, .correct-panel")) return;
    const selection = window.getSelection();
    if (selection && !selection.isCollapsed && line.contains(selection.anchorNode)) return; // choosing words
    setCurrentLine(line);
    seek(Number(line.dataset.start));
  });
}

// ---------------------------------------------------------------- transcript

function renderTranscript() {
  const box = $("#transcript");
  const focusedIndex = document.activeElement && document.activeElement.closest("#transcript .line")
    ? Number(document.activeElement.closest(".line").dataset.index) : null;
  box.replaceChildren();
  state.transcript.segments.forEach((seg, index) => {
    const who = seg.speaker ? displayOf(seg.speaker) : "";
    box.append(el("li", {
      class: "line", tabindex: "-1", dataset: { index, start: seg.start, end: seg.end, speaker: seg.speaker || "" },
      style: { borderLeftColor: seg.speaker ? colourOf(seg.speaker) : "transparent" },
    },
    el("span", { class: "ts" }, clock(seg.start)),
    el("span", { class: "who" }, seg.speaker ? swatch(seg.speaker) : null, " ", who),
    el("span", { class: "text" }, ...words(seg)),
    el("button", { type: "button", class: "correct link", tabindex: "-1", "aria-expanded": "false",
      "aria-label": `Correct line ${index + 1} (${who})`, onclick: (e) => openCorrection(e.target.closest(".line")) },
    "Correct")));
  });
  const lines = box.querySelectorAll(".line");
  const current = lines[Math.min(focusedIndex ?? 0, lines.length - 1)];
  if (current) setCurrentLine(current, focusedIndex !== null);
  highlight();
}

function words(seg) {
  if (!seg.words || !seg.words.length) return [seg.text.trim()];
  return seg.words.map((w, i) => el("span", { class: "w", dataset: { i } }, w.word));
}

function setCurrentLine(line, focus = false) {
  $("#transcript").querySelectorAll("[tabindex='0']").forEach((x) => { x.tabIndex = -1; });
  line.tabIndex = 0;
  line.querySelector(".correct").tabIndex = 0;
  if (focus) line.focus();
}

function transcriptKeys(e) {
  if (e.target.closest(".correct-panel")) {
    if (e.key === "Escape") { e.preventDefault(); closeCorrection(true); }
    return;
  }
  const line = e.target.closest(".line");
  if (!line || e.target !== line) return;
  const lines = [...$("#transcript").querySelectorAll(".line")];
  const i = lines.indexOf(line);
  let next = null;
  if (e.key === "ArrowDown") next = lines[i + 1];
  else if (e.key === "ArrowUp") next = lines[i - 1];
  else if (e.key === "Home") next = lines[0];
  else if (e.key === "End") next = lines[lines.length - 1];
  else if (e.key === "Enter" || e.key === " ") { e.preventDefault(); seek(Number(line.dataset.start)); return; }
  else return;
  e.preventDefault();
  if (next) setCurrentLine(next, true);
}

function selectedWords(line) {
  // The words of ``line`` the user selected with the mouse, as [first, last] indices.
  const selection = window.getSelection();
  if (!selection || selection.isCollapsed) return null;
  const chosen = [...line.querySelectorAll(".w")].filter((w) => selection.containsNode(w, true));
  return chosen.length ? [Number(chosen[0].dataset.i), Number(chosen[chosen.length - 1].dataset.i)] : null;
}

function closeCorrection(refocus) {
  const panel = $("#transcript .correct-panel");
  if (!panel) return;
  const line = panel.previousElementSibling;
  panel.remove();
  if (line) {
    line.querySelector(".correct").setAttribute("aria-expanded", "false");
    if (refocus) line.querySelector(".correct").focus();
  }
}

function openCorrection(line) {
  const open = $("#transcript .correct-panel");
  const wasThis = open && open.previousElementSibling === line;
  closeCorrection(false);
  if (wasThis) return;
  setCurrentLine(line);
  const index = Number(line.dataset.index);
  const seg = state.transcript.segments[index];
  const n = (seg.words || []).length;
  const chosen = selectedWords(line) || [0, Math.max(0, n - 1)];
  const wordOptions = (from) => (seg.words || []).map((w, i) => el("option", { value: i },
    `${i + 1}: ${w.word.trim()}`)).slice(from);
  const first = el("select", { "aria-label": "First word to move" }, ...wordOptions(0));
  const last = el("select", { "aria-label": "Last word to move" }, ...wordOptions(0));
  first.value = String(chosen[0]);
  last.value = String(chosen[1]);
  const others = state.transcript.speakers.filter((s) => s.label !== seg.speaker);
  const target = el("select", { "aria-label": "Speaker to move the words to" },
    ...others.map((s) => el("option", { value: s.label }, s.display)), el("option", { value: "new" }, "a new speaker"));
  const move = el("button", { type: "submit", class: "button small" }, "Move");
  const moveForm = el("form", { class: "move", "aria-label": `Move words of line ${index + 1}` },
    n > 1 ? el("label", {}, "Words ", first) : null, n > 1 ? el("label", {}, " to ", last) : null,
    el("label", {}, n > 1 ? " go to " : "This line goes to ", target), " ", move);
  moveForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [a, b] = [Number(first.value), Number(last.value)];
    if (n > 1 && a > b) { announce("The first word comes after the last one."); return; }
    const edit = n > 1 ? { op: "move", line: index, target: target.value, first_word: a, last_word: b }
      : { op: "move", line: index, target: target.value };
    const whole = n <= 1 || (a === 0 && b === n - 1);
    const to = target.value === "new" ? "a new speaker" : displayOf(target.value);
    if (await correct(edit, `Moved ${whole ? `line ${index + 1}` : `words ${a + 1} to ${b + 1}`} to ${to}`)) {
      const lines = $("#transcript").querySelectorAll(".line");
      const again = lines[Math.min(index + (whole || a === 0 ? 0 : 1), lines.length - 1)];
      if (again) setCurrentLine(again, true);
    }
  });
  const at = el("select", { "aria-label": "Split before word" }, ...wordOptions(1));
  const splitForm = el("form", { class: "split", "aria-label": `Split line ${index + 1}` },
    el("label", {}, "Split before word ", at), " ", el("button", { type: "submit", class: "button small secondary" },
      "Split"));
  splitForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await correct({ op: "split", line: index, word: Number(at.value) }, `Split line ${index + 1}`)) {
      const again = $("#transcript").querySelectorAll(".line")[index + 1];
      if (again) setCurrentLine(again, true);
    }
  });
  const close = el("button", { type: "button", class: "link", onclick: () => closeCorrection(true) }, "Close");
  const panel = el("li", { class: "correct-panel" }, moveForm, n > 1 ? splitForm : null, close);
  line.after(panel);
  line.querySelector(".correct").setAttribute("aria-expanded", "true");
  (n > 1 ? first : target).focus();
}
