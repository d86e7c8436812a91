"""The dashboard in headless Chromium (Debian's ``chromium`` driven by Playwright).

A real server (uvicorn on 127.0.0.1) serves the real front end and API; only the
transcriber is scripted, replaying the reference turns of a synthesised conversation,
so the browser sees real speech audio and a realistic transcript in seconds.
The last test runs the real pipeline behind the same front end. Screenshots go to
``artifacts/screenshots/``; with ``SAYWHO_UPDATE_DOCS=1`` the real run's overview is also
copied to ``docs/img/dashboard.png`` for the README.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SAYWHO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

from saywho.server.app import create_app  # noqa: E402 (after the importorskip guards)
from saywho.settings import Settings  # noqa: E402

from .jobs_fakes import DEFAULT_LINES, ScriptedTranscriber, write_tone_wav  # noqa: E402


class _NoInference:
    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A short conversation of three synthetic voices, with its lines as (start, end, label, text)."""
    folder = tmp_path_factory.mktemp("rec")
    path = folder / "standup.wav"
    try:
        from saywho.evaluation.synth import conversation, demo_lines

        voices = ["flite:slt", "flite:awb", "flite:rms"]
        conv = conversation(demo_lines(voices, 6), gap_s=0.5)
        conv.write(path)
        labels = {v: f"Speaker_{i}" for i, v in enumerate(voices)}
        lines = tuple((t.start, t.end, labels[t.speaker], text)
                      for t, (_, text) in zip(conv.turns, conv.texts, strict=True))
        return path, lines
    except Exception:
        write_tone_wav(path, 20.0)
        return path, DEFAULT_LINES


@pytest.fixture(scope="module")
def server(tmp_path_factory, recording):
    data = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data, db_path=data / "server.db")
    app = create_app(settings, inference=_NoInference())
    _, lines = recording
    app.state.jobs.runner.transcriber = ScriptedTranscriber(lines, chunk_s=5.0, delay_s=0.4)
    with serving(app) as url:
        yield {"url": url, "app": app, "settings": settings, "lines": lines}


@contextlib.contextmanager
def serving(app):
    """Run ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server["url"] + "/")
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def drop_file(page, path: Path, mime: str = "audio/wav") -> None:
    """Drop a file on the drop zone, as a user dragging it from the desktop would."""
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(
        """([name, mime, data]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: mime }));
            const drop = document.querySelector('#drop');
            drop.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
            drop.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [path.name, mime, data],
    )


def record_progress(page) -> None:
    page.evaluate(
        """() => {
            window.__percents = [];
            const target = document.querySelector('#progress-text');
            new MutationObserver(() => window.__percents.push(Number(target.dataset.percent)))
                .observe(target, { attributes: true, childList: true, characterData: true, subtree: true });
        }"""
    )


def job_files(server) -> list[Path]:
    root = server["settings"].data_dir / "uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_watch_progress_explore_rename_and_export(page, server, recording) -> None:
    path, lines = recording
    record_progress(page)
    drop_file(page, path)

    # progress reaches 100% and never goes backwards
    page.wait_for_selector("#job-view:not([hidden])")
    page.wait_for_function("document.querySelector('#progress-text').dataset.percent === '100'", timeout=30_000)
    percents = page.evaluate("window.__percents.filter((p) => !Number.isNaN(p))")
    assert percents == sorted(percents) and percents[-1] == 100
    assert len(set(percents)) >= 3, percents  # it moved, not just jumped to the end
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#job-status") == "finished"

    # speakers, timeline, transcript
    speakers = {s: len([x for x in lines if x[2] == s]) for s in dict.fromkeys(x[2] for x in lines)}
    assert page.locator("#speakers .speaker").count() == len(speakers)
    assert page.locator("#timeline .row").count() == len(speakers)
    assert page.locator("#timeline .turn").count() == len(lines)
    assert page.locator("#transcript .line").count() == len(lines)
    colours = {page.locator(f"#timeline .row[data-label='{s}'] .turn").first.evaluate(
        "e => getComputedStyle(e).backgroundColor") for s in speakers}
    assert len(colours) == len(speakers)  # one colour per speaker

    # the timeline zooms
    def width():
        return page.eval_on_selector("#timeline .canvas", "e => e.getBoundingClientRect().width")
    before = width()
    page.click("#zoom-in")
    assert width() == pytest.approx(2 * before, rel=0.02)
    page.click("#zoom-fit")
    assert width() == pytest.approx(before, rel=0.02)

    # clicking a line seeks the player; playback highlights the current line
    page.wait_for_function("document.querySelector('#player').readyState >= 1", timeout=10_000)
    target = page.locator("#transcript .line").nth(3)
    start = float(target.get_attribute("data-start"))
    target.click()
    current = page.evaluate("document.querySelector('#player').currentTime")
    assert current == pytest.approx(start, abs=0.3)
    page.wait_for_function("document.querySelector('#transcript .line.active') !== null")
    assert page.locator("#transcript .line").nth(3).get_attribute("class").split().count("active") == 1
    page.evaluate("document.querySelector('#player').pause()")
    shot(page, "dashboard")

    # rename a speaker: the transcript, the timeline and the exported SRT show the name
    page.click("#speakers .speaker[data-label='Speaker_1'] .name")
    page.fill("#speakers .speaker[data-label='Speaker_1'] input[type=text]", "Ada Lovelace")
    page.keyboard.press("Enter")
    page.wait_for_selector("#speakers .speaker[data-label='Speaker_1'] .name:text('Ada Lovelace')")
    assert "Ada Lovelace" in page.inner_text("#transcript")
    assert "Ada Lovelace" in page.inner_text("#timeline-labels")  # row labels sit beside the plot
    with page.expect_download() as download:
        page.click("#downloads a[data-format='srt']")
    srt = Path(download.value.path()).read_text(encoding="utf-8")
    assert "[Ada Lovelace]" in srt and "[Speaker_1]" not in srt
    assert download.value.suggested_filename == f"{path.stem}.srt"
    for fmt in ("vtt", "txt", "json", "diarized_json", "rttm"):
        assert page.locator(f"#downloads a[data-format='{fmt}']").count() == 1
    shot(page, "renamed")


def test_a_failed_job_shows_its_error(page, server, recording) -> None:
    path, lines = recording
    runner = server["app"].state.jobs.runner
    normal = runner.transcriber
    runner.transcriber = ScriptedTranscriber(lines, chunk_s=5.0, delay_s=0.1, fail_at=1)
    try:
        page.set_input_files("#file-input", str(path))
        page.wait_for_selector("#job-error:not([hidden])", timeout=20_000)
    finally:
        runner.transcriber = normal
    assert "broke on purpose" in page.inner_text("#job-error")
    assert page.inner_text("#job-status") == "failed"
    shot(page, "failed-job")


def test_a_file_that_is_not_audio_shows_an_error_and_leaves_nothing(page, server, tmp_path) -> None:
    bad = tmp_path / "minutes.mp3"
    bad.write_text("These are meeting minutes, not audio.\n" * 50)
    files_before = job_files(server)
    jobs_before = page.evaluate("fetch('/v1/jobs?limit=100').then((r) => r.json()).then((b) => b.data.length)")
    page.set_input_files("#file-input", str(bad))
    page.wait_for_selector("#upload-error:not([hidden])")
    message = page.inner_text("#upload-error")
    assert "minutes.mp3" in message and "not a readable audio" in message
    jobs_after = page.evaluate("fetch('/v1/jobs?limit=100').then((r) => r.json()).then((b) => b.data.length)")
    assert jobs_after == jobs_before
    assert job_files(server) == files_before
    shot(page, "bad-upload")


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """The same server with the real pipeline behind the jobs (no scripted transcriber):
    jobs run in the supervised inference worker, as in production."""
    data = tmp_path_factory.mktemp("real")
    settings = Settings(data_dir=data, db_path=data / "server.db")
    app = create_app(settings)
    with serving(app) as url:
        yield {"url": url, "settings": settings}


@pytest.mark.slow
def test_real_pipeline_end_to_end_in_the_browser(browser, real_server, recording) -> None:
    """Upload -> real ASR and diarization -> speakers, timeline, seek, rename, SRT."""
    path, lines = recording
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(real_server["url"] + "/")
        record_progress(page)
        drop_file(page, path)
        page.wait_for_selector("#job-view:not([hidden])")
        page.wait_for_function("document.querySelector('#progress-text').dataset.percent === '100'",
                               timeout=300_000)
        percents = page.evaluate("window.__percents.filter((p) => !Number.isNaN(p))")
        assert percents == sorted(percents) and percents[-1] == 100
        page.wait_for_selector("#result:not([hidden])")
        voices = len({x[2] for x in lines})
        assert page.locator("#speakers .speaker").count() == voices
        assert page.locator("#timeline .row").count() == voices
        text = page.inner_text("#transcript").lower()
        assert "budget" in text and "thursday" in text
        page.wait_for_function("document.querySelector('#player').readyState >= 1", timeout=10_000)
        target = page.locator("#transcript .line").nth(2)
        start = float(target.get_attribute("data-start"))
        target.click()
        assert page.evaluate("document.querySelector('#player').currentTime") == pytest.approx(start, abs=0.3)
        page.evaluate("document.querySelector('#player').pause()")
        shot(page, "dashboard-real")
        if os.environ.get("SAYWHO_UPDATE_DOCS"):  # the README shows what the real pipeline gave
            shutil.copyfile(SHOTS / "dashboard-real.png", ROOT / "docs" / "img" / "dashboard.png")
        page.click("#speakers .speaker[data-label='Speaker_1'] .name")
        page.fill("#speakers .speaker[data-label='Speaker_1'] input[type=text]", "Grace Hopper")
        page.keyboard.press("Enter")
        page.wait_for_selector("#speakers .speaker[data-label='Speaker_1'] .name:text('Grace Hopper')")
        with page.expect_download() as download:
            page.click("#downloads a[data-format='srt']")
        srt = Path(download.value.path()).read_text(encoding="utf-8")
        assert "[Grace Hopper]" in srt and "[Speaker_1]" not in srt
        # a merge: the merged speaker's voice is made again in the inference worker from its lines
        page.select_option("#merge-source", "Speaker_2")
        page.select_option("#merge-target", "Speaker_0")
        with page.expect_response(lambda r: r.url.endswith("/corrections") and r.request.method == "POST") as done:
            page.click("#merge button[type=submit]")
        assert done.value.json()["correction"]["voices"] == ["Speaker_0"]
        page.wait_for_function(f"document.querySelectorAll('#speakers .speaker').length === {voices - 1}")
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"
