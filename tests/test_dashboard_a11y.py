"""The dashboard for real use, in headless Chromium: accessibility (axe-core), keyboard
only, long recordings with many speakers, live feedback on running jobs, corrections,
recordings made in the browser.

axe-core comes from npm (``make test`` installs it into ``tests/.axe``; nothing is
vendored): the accessibility checks skip without it. Screenshots go to
``artifacts/screenshots/``; with ``SAYWHO_UPDATE_DOCS=1`` the ones the docs show are
copied to ``docs/img/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from .test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, SHOTS, serving, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api")
PlaywrightTimeoutError = sync_api.TimeoutError
pytest.importorskip("uvicorn")

from saywho.server.app import create_app  # noqa: E402 (after the importorskip guards)
from saywho.settings import Settings  # noqa: E402

from .jobs_fakes import DEFAULT_LINES, ScriptedTranscriber, write_tone_wav  # noqa: E402

AXE = ROOT / "tests" / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
DEV = ROOT.parent / "shared" / "data" / "dev" / "diarization"
if not DEV.exists():
    DEV = Path("/work/shared/data/dev/diarization")
# A fake microphone (a beep) and no permission prompt, for recording in the browser.
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


class _NoInference:
    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("a11y")
    settings = Settings(data_dir=data, db_path=data / "server.db", speakers_db=data / "speakers.db")
    app = create_app(settings, inference=_NoInference())
    app.state.jobs.runner.transcriber = ScriptedTranscriber(DEFAULT_LINES, chunk_s=5.0, delay_s=0.1)
    with serving(app) as url:
        yield {"url": url, "app": app, "settings": settings}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + MEDIA_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def open_page(browser, server):
    contexts = []
    errors: list[str] = []

    def open_(path: str = "/", width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server["url"] + path)
        page.wait_for_selector("#jobs li")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def transcriber(server):
    """Swap the server's scripted transcriber for one test."""
    runner = server["app"].state.jobs.runner
    normal = runner.transcriber

    def use(t):
        runner.transcriber = t
        return t

    yield use
    runner.transcriber = normal


@pytest.fixture(scope="module")
def standup(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "standup.wav"
    write_tone_wav(path, 20.0)
    return path


def axe_violations(page, context: str) -> list[str]:
    """Serious and critical WCAG 2.1 A/AA violations axe-core finds on the page."""
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (make test installs it with npm)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run(document, {
                runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
                resultTypes: ['violations'] }))
            .violations.filter((v) => ['serious', 'critical'].includes(v.impact))
            .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`)"""
    )
    return [f"{context}: {v}" for v in found]


def active(page) -> str:
    """A short description of the focused element."""
    return page.evaluate("""() => { const e = document.activeElement;
        return `${e.tagName.toLowerCase()}#${e.id}.${[...e.classList].join('.')}[${e.getAttribute('aria-label') || ''}]`; }""")


def tab_to(page, selector: str, limit: int = 60) -> None:
    """Press Tab until the focused element matches ``selector`` (as a keyboard user would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector} (last: {active(page)})")


def open_chooser_by_keyboard(page, attempts: int = 3):
    """Tab to "Choose a file" and press Space; the file chooser that opens.

    The page may still redraw after a job (focus can move under a key press), so a
    keyboard user who sees nothing open presses again: up to ``attempts`` times."""
    for attempt in range(attempts):
        tab_to(page, "#file-input")
        try:
            with page.expect_file_chooser(timeout=5000) as chooser:
                page.keyboard.press("Space")
            return chooser.value
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
    raise AssertionError("unreachable")


def wait_finished(page) -> None:
    page.wait_for_function("document.querySelector('#job-status').textContent === 'finished'", timeout=60_000)
    page.wait_for_selector("#result:not([hidden])")


def copy_to_docs(*names: str) -> None:
    if os.environ.get("SAYWHO_UPDATE_DOCS"):
        for name in names:
            shutil.copyfile(SHOTS / f"{name}.png", ROOT / "docs" / "img" / f"{name}.png")


# ---------------------------------------------------------------------------
# Accessibility and live feedback on a running job
# ---------------------------------------------------------------------------


def test_no_serious_accessibility_violations_and_a_running_job_shows_its_progress(
        open_page, server, transcriber, standup) -> None:
    page = open_page()
    problems = axe_violations(page, "empty page")

    hold = threading.Event()
    transcriber(ScriptedTranscriber(DEFAULT_LINES, chunk_s=10.0, delay_s=0.1, hold=hold))
    try:
        page.set_input_files("#file-input", str(standup))
        # the first of two chunks is done; the job waits before the second
        page.wait_for_selector("#partial-lines .line", timeout=20_000)
        assert page.inner_text("#job-status") == "running"
        partial = page.inner_text("#partial-lines")
        assert DEFAULT_LINES[0][3] in partial and DEFAULT_LINES[-1][3] not in partial
        progress = page.inner_text("#progress-text")
        assert re.search(r"part \d of 2", progress), progress
        # the audio plays at once; the job list keeps the recording's length while it runs
        page.wait_for_function("document.querySelector('#player').readyState >= 1", timeout=10_000)
        assert page.evaluate("document.querySelector('#player').duration") == pytest.approx(20.0, abs=0.1)
        assert "0:20" in page.inner_text("#jobs .job-item.selected .meta")
        assert page.get_attribute("#progress-bar", "aria-valuenow") is not None
        shot(page, "running-job")
        problems += axe_violations(page, "running job")
    finally:
        hold.set()
    wait_finished(page)
    assert page.locator("#partial").is_hidden()
    assert "0:20" in page.inner_text("#jobs .job-item.selected .meta")
    problems += axe_violations(page, "finished job")
    # the correction panel of a line, open
    page.locator("#transcript .line .correct").first.click()
    problems += axe_violations(page, "correcting a line")
    page.locator("#transcript .correct-panel .link").click()
    copy_to_docs("running-job")

    # the live view: recording from a (fake) microphone
    tab_to(page, "#record")
    page.keyboard.press("Enter")
    page.wait_for_selector("#record-time:not([hidden])")
    assert page.get_attribute("#record", "aria-pressed") == "true"
    page.wait_for_timeout(2500)
    problems += axe_violations(page, "recording")
    shot(page, "recording")
    assert page.evaluate("document.activeElement.id") == "record"
    page.keyboard.press("Enter")  # stop: the recording is uploaded as a job
    page.wait_for_function("document.querySelector('#job-title').textContent.startsWith('recording-')",
                           timeout=20_000)
    # stored with its duration: the player knows how long it is (MediaRecorder's WebM did not say)
    page.wait_for_function("Number.isFinite(document.querySelector('#player').duration)", timeout=10_000)
    assert page.evaluate("document.querySelector('#player').duration") == pytest.approx(2.5, abs=1.0)
    job = page.evaluate("fetch('/v1/jobs?limit=1').then((r) => r.json()).then((b) => b.data[0])")
    assert job["filename"].endswith(".webm") and job["duration"] == pytest.approx(2.5, abs=1.0)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# Keyboard only
# ---------------------------------------------------------------------------


def test_keyboard_only_upload_switch_rename_merge_move_play_and_undo(open_page, server, standup) -> None:
    page = open_page()
    puts = []
    page.on("request", lambda r: puts.append(r.post_data) if r.method == "PUT" else None)

    # upload: Tab reaches "Choose a file", Space opens the file chooser
    for name in ("first.wav", "second.wav"):
        target = standup.with_name(name)
        shutil.copyfile(standup, target)
        open_chooser_by_keyboard(page).set_files(str(target))
        page.wait_for_function(f"document.querySelector('#job-title').textContent === '{name}'")
        wait_finished(page)

    # switch jobs: the list's items are buttons
    tab_to(page, "#jobs .job-item:not(.selected)")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#job-title').textContent === 'first.wav'")
    wait_finished(page)
    assert page.get_attribute("#jobs .job-item.selected", "aria-current") == "true"

    # rename: Enter opens the field (and saves nothing yet), Enter saves, focus comes back
    tab_to(page, "#speakers .speaker[data-label='Speaker_1'] .name")
    page.keyboard.press("Enter")
    assert active(page).startswith("input#.") and "Name for Speaker_1" in active(page)
    page.wait_for_timeout(300)
    assert puts == []  # the Enter that opened the field did not send the unchanged name
    page.keyboard.type("Ada Lovelace")
    page.keyboard.press("Enter")
    page.wait_for_selector("#speakers .speaker[data-label='Speaker_1'] .name:text('Ada Lovelace')")
    assert len(puts) == 1 and "Ada Lovelace" in puts[0]
    assert page.evaluate("document.activeElement.closest('.speaker').dataset.label") == "Speaker_1"
    # Escape leaves a name as it was, focus on the name again
    page.keyboard.press("Enter")
    page.keyboard.type("Nobody")
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.classList.contains('name')")
    assert len(puts) == 1

    # merge Speaker_2 into Speaker_0 with the keyboard, then undo it
    tab_to(page, "#merge-source")
    page.keyboard.press("ArrowDown")  # Ada Lovelace (Speaker_1) -> Speaker_2
    assert page.eval_on_selector("#merge-source", "e => e.value") == "Speaker_2"
    tab_to(page, "#merge button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#speakers .speaker').length === 2")
    assert page.locator("#timeline .row").count() == 2
    page.wait_for_function("document.querySelector('#progress-live').textContent.includes('Merged')")
    tab_to(page, "#undo")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#speakers .speaker').length === 3")

    # move line 4 (index 3) to a new speaker: transcript lines are one tab stop, arrows move
    tab_to(page, "#transcript .line")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.index") == "3"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('correct')")
    page.keyboard.press("Enter")
    tab_to(page, ".correct-panel select[aria-label='Speaker to move the words to']")
    page.keyboard.press("End")  # "a new speaker"
    assert page.evaluate("document.activeElement.value") == "new"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Move"
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector(\"#transcript .line[data-index='3']\").dataset.speaker"
                           " === 'Speaker_3'")
    # Speaker_2 said only that line: it is gone, the new speaker took its place
    assert page.locator("#speakers .speaker").evaluate_all("l => l.map((x) => x.dataset.label)") == [
        "Speaker_0", "Speaker_1", "Speaker_3"]
    assert page.evaluate("document.activeElement.dataset.index") == "3"
    srt = page.evaluate("fetch(document.querySelector(\"#downloads a[data-format='srt']\").href)"
                        ".then((r) => r.text())")
    assert f"[Speaker_3] {DEFAULT_LINES[3][3]}" in srt and "[Ada Lovelace]" in srt

    # playback: Enter on a line plays from it; the timeline's turns are reachable too
    page.wait_for_function("document.querySelector('#player').readyState >= 1", timeout=10_000)
    page.keyboard.press("ArrowDown")
    start = float(page.evaluate("document.activeElement.dataset.start"))
    page.keyboard.press("Enter")
    assert page.evaluate("document.querySelector('#player').currentTime") == pytest.approx(start, abs=0.3)
    page.wait_for_function("!document.querySelector('#player').paused")
    page.evaluate("document.querySelector('#player').pause()")
    tab_to(page, "#timeline .turn")
    first = float(page.evaluate("document.activeElement.dataset.start"))
    page.keyboard.press("ArrowRight")
    second = float(page.evaluate("document.activeElement.dataset.start"))
    assert second > first
    page.keyboard.press("Enter")
    assert page.evaluate("document.querySelector('#player').currentTime") == pytest.approx(second, abs=0.3)
    page.evaluate("document.querySelector('#player').pause()")
    shot(page, "corrected")

    # undo, last first: Ctrl+Z takes back the move, the Undo button the rename
    assert page.inner_text("#undo") == "Undo (2)"
    page.keyboard.press("Control+z")
    page.wait_for_function("document.querySelector(\"#transcript .line[data-index='3']\").dataset.speaker"
                           " === 'Speaker_2'")
    page.wait_for_function("document.querySelector('#progress-live').textContent.includes('Undone: the move')")
    assert page.locator("#speakers .speaker").evaluate_all("l => l.map((x) => x.dataset.label)") == [
        "Speaker_0", "Speaker_1", "Speaker_2"]
    tab_to(page, "#undo")
    page.keyboard.press("Enter")
    page.wait_for_selector("#speakers .speaker[data-label='Speaker_1'] .name:text('Speaker_1')")
    assert page.is_disabled("#undo")
    assert page.evaluate("document.activeElement.textContent") == "Merge"  # focus is not lost
    srt = page.evaluate("fetch(document.querySelector(\"#downloads a[data-format='srt']\").href)"
                        ".then((r) => r.text())")
    assert "Ada Lovelace" not in srt and f"[Speaker_2] {DEFAULT_LINES[3][3]}" in srt


# ---------------------------------------------------------------------------
# A long recording with many speakers
# ---------------------------------------------------------------------------

CLIPS = ("sample", "dev00", "dev01", "trn00", "trn03", "trn06", "trn08")
LONG_S = 20 * 60.0


def long_meeting(folder: Path) -> tuple[Path, list]:
    """20 minutes built from the dev recordings, one after another, with their reference
    turns as lines; a voice of ``sample`` counts as another person every other round, so
    the meeting has 15 speakers."""
    from saywho.audio.decode import load_audio

    turns: dict[str, list] = {}
    for rttm in DEV.glob("*.rttm"):
        for row in rttm.read_text().splitlines():
            f = row.split()
            if f and f[0] == "SPEAKER":
                turns.setdefault(f[1], []).append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    pieces, lines, offset, n = [], [], 0.0, 0
    while offset < LONG_S:
        for clip in CLIPS:
            if offset >= LONG_S:
                break
            samples = load_audio(DEV / f"{clip}.wav").samples
            pieces.append(samples)
            second = (len(pieces) // len(CLIPS)) % 2 == 1
            for start, end, who in sorted(turns[clip]):
                label = f"{who}-b" if second and clip == "sample" and who == "speaker90" else who
                if offset + end <= LONG_S:
                    n += 1
                    lines.append((round(offset + start, 3), round(offset + end, 3), label, f"turn {n} of {label}"))
            offset += len(samples) / 16000
    audio = np.concatenate(pieces)[: int(LONG_S * 16000)]
    wav = folder / "meeting.wav"
    from saywho.audio.decode import write_wav

    write_wav(wav, audio)
    ogg = folder / "long-meeting.ogg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libopus", "-b:a", "24k", str(ogg)],
                   check=True)
    return ogg, lines


@pytest.mark.skipif(not DEV.exists(), reason="needs the dev recordings (../shared/data/dev)")
def test_a_20_minute_15_speaker_job_fits_with_distinct_colours(open_page, transcriber, tmp_path) -> None:
    path, lines = long_meeting(tmp_path)
    speakers = list(dict.fromkeys(x[2] for x in lines))
    assert len(speakers) == 15, speakers
    transcriber(ScriptedTranscriber(lines, chunk_s=300.0, delay_s=0.05))
    page = open_page()
    page.set_input_files("#file-input", str(path))
    wait_finished(page)
    job_hash = page.evaluate("location.hash")
    problems = axe_violations(page, "long job")
    for width, height, name in ((1280, 900, "long-desktop"), (390, 844, "long-mobile")):
        if width != 1280:
            page = open_page("/" + job_hash, width=width, height=height)
            wait_finished(page)
        assert page.locator("#timeline .row").count() == 15
        # fit shows the whole recording: the plot is no wider than its box
        box = page.eval_on_selector("#timeline", "e => [e.clientWidth, e.scrollWidth]")
        assert box[1] <= box[0], box
        page.click("#zoom-in")
        page.click("#zoom-fit")
        assert page.eval_on_selector("#timeline", "e => e.scrollWidth <= e.clientWidth")
        # every speaker its own colour and its own number
        colours = page.evaluate("""() => [...document.querySelectorAll('#timeline .row')].map((r) =>
            getComputedStyle(r.querySelector('.turn')).backgroundColor)""")
        assert len(set(colours)) == 15, colours
        numbers = page.evaluate("[...document.querySelectorAll('#timeline-labels .swatch')].map((s) => s.textContent)")
        assert numbers == [str(i) for i in range(1, 16)]
        # the labels are beside the plot, never over a turn
        labels_right = page.eval_on_selector("#timeline-labels", "e => e.getBoundingClientRect().right")
        first_turn = page.evaluate("Math.min(...[...document.querySelectorAll('#timeline .turn')]"
                                   ".map((t) => t.getBoundingClientRect().left))")
        assert first_turn >= labels_right - 1
        # the ruler counts whole minutes at this scale: 0:00, 2:00... not 2:00.0
        ticks = page.evaluate("[...document.querySelectorAll('#timeline .tick')].map((t) => t.textContent)")
        assert ticks[0] == "0:00" and all(re.fullmatch(r"\d+:\d\d", t) for t in ticks), ticks
        assert len(ticks) >= (6 if width > 800 else 2), ticks
        # zoomed in, playback keeps the playhead in view
        for _ in range(4):
            page.click("#zoom-in")
        page.evaluate("document.querySelector('#player').currentTime = 900")
        page.wait_for_function("document.querySelector('#player').readyState >= 1", timeout=10_000)
        page.evaluate("document.querySelector('#player').play()")
        page.wait_for_function("""() => { const b = document.querySelector('#timeline');
            const x = parseFloat(document.querySelector('#playhead').style.left);
            return x >= b.scrollLeft && x <= b.scrollLeft + b.clientWidth; }""", timeout=10_000)
        page.evaluate("document.querySelector('#player').pause()")
        page.click("#zoom-fit")
        shot(page, name)
    copy_to_docs("long-desktop", "long-mobile")
    assert not problems, "\n".join(problems)
