"""The dashboard's Live mode in real Chromium against a real ``saywho serve``: a WAV of two
people (16 s of the dev set's ``sample.wav``) is the microphone
(``--use-file-for-fake-audio-capture``), streamed by the page to ``WS /v1/realtime``;
speaker-coloured lines appear while it plays, a speaker is named during the session, and
after Stop the recording becomes a job whose refined transcript the page opens.
Screenshots go to ``artifacts/screenshots/``; with ``SAYWHO_UPDATE_DOCS=1`` the live one
is copied to ``docs/img/live-mode.png``."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest

from .server_harness import start_server
from .test_dashboard_a11y import axe_violations, copy_to_docs
from .test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api")

SAMPLES = [Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dev" / "diarization" / "sample.wav",
           Path("/work/shared/data/dev/diarization/sample.wav")]
CLIP = (6.0, 22.0)  # seconds of sample.wav where its two speakers take turns


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory) -> Path:
    source = next((p for p in SAMPLES if p.is_file()), None)
    if source is None:
        pytest.skip("the dev set (../shared/data/dev) is not here")
    with wave.open(str(source)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())[:, 0]
    path = tmp_path_factory.mktemp("mic") / "two_voices.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm[int(CLIP[0] * rate): int(CLIP[1] * rate)].tobytes())
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("live"), model_ttl_s=-1)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_live_mode_streams_the_microphone_with_speakers_then_opens_the_refined_job(two_voices, server) -> None:
    seconds = CLIP[1] - CLIP[0]
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={two_voices}"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        page.wait_for_selector("#jobs li")

        page.focus("#live")
        page.keyboard.press("Enter")  # the keyboard starts it
        page.wait_for_selector("#live-view:not([hidden])")
        assert page.get_attribute("#live", "aria-pressed") == "true"
        page.wait_for_function("document.querySelector('#live-state').textContent.startsWith('Listening')",
                               timeout=20_000)
        began = time.monotonic()

        # lines with a speaker's colour and number while the session runs
        page.wait_for_selector("#live-lines .line", timeout=60_000)
        assert page.get_attribute("#live", "aria-pressed") == "true"
        first = page.locator("#live-lines .line").first
        assert first.get_attribute("style") and "border-left-color" in first.get_attribute("style")
        assert first.locator(".swatch").inner_text() == "1"

        # name the first speaker while the session runs: its lines follow
        page.fill("#live-name-0", "Ada")
        page.press("#live-name-0", "Enter")
        page.wait_for_function("[...document.querySelectorAll('#live-lines .line .name')]"
                               ".some((n) => n.textContent === 'Ada')", timeout=20_000)
        problems = axe_violations(page, "live mode") if _has_axe() else []

        # Chromium loops the file: stop once it has played through
        time.sleep(max(0.0, seconds - 0.3 - (time.monotonic() - began)))
        # On a loaded machine the engine runs behind the audio (it reports its lag): give
        # it time to reach the second voice before stopping (the loop only repeats the clip).
        page.wait_for_function("new Set([...document.querySelectorAll('#live-lines .line')]"
                               ".map((l) => l.dataset.speaker)).size >= 2", timeout=60_000)
        page.click("#live")
        shot(page, "live-mode")

        # the session became a job; the page opens it and shows the refined transcript
        page.wait_for_selector("#job-view:not([hidden])", timeout=60_000)
        live_speakers = page.evaluate("new Set([...document.querySelectorAll('#live-lines .line')]"
                                      ".map((l) => l.dataset.speaker)).size")
        live_text = page.evaluate("document.querySelector('#live-lines').textContent")
        assert page.inner_text("#job-title").startswith("live-")
        page.wait_for_function("document.querySelector('#job-status').textContent === 'finished'", timeout=120_000)
        page.wait_for_selector("#transcript .line")
        assert page.locator("#jobs .job-item.selected").inner_text().startswith("live-")
        refined = page.inner_text("#transcript")
        shot(page, "live-refined-job")
        browser.close()
    copy_to_docs("live-mode")

    assert live_speakers >= 2, live_text
    assert len(live_text.split()) >= 20, live_text
    assert len(refined.split()) >= 20, refined
    assert not problems, problems
    assert not errors, f"JavaScript errors: {errors}"


def _has_axe() -> bool:
    from .test_dashboard_a11y import AXE

    return AXE.exists()
