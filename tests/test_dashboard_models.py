"""The dashboard's "Speech models" panel in headless Chromium, against the real server
(``saywho serve`` with its inference worker, tiny.en preloaded) and a model hub served on
127.0.0.1 by the test (the fixture of ``test_models_pull``): pull with the progress
dialog, a failed pull shown plainly, switch the default, unload, delete; keyboard and
axe-core on the way.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from .test_dashboard_a11y import axe_violations
from .test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, shot
from .test_models_pull import MODEL_ID, Hub, local_hub  # noqa: F401 (local_hub is a fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,  # preloads the real tiny.en in the worker
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api")


def item(page, model_id: str):
    return page.locator(f'#models li[data-model="{model_id}"]')


def test_pull_with_progress_dialog_switch_unload_delete(local_hub: Hub, tmp_path: Path) -> None:  # noqa: F811
    from saywho.models import registry
    from tests.server_harness import start_server

    server = start_server(tmp_path, preload=["tiny.en"], model_ttl_s=600)
    errors: list[str] = []
    try:
        server.wait_ready()
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("dialog", lambda dialog: dialog.accept())  # the confirmation before a delete
            page.goto(server.url + "/")

            # Installed models with size and state: the preloaded tiny.en is loaded, with its memory.
            tiny = item(page, "tiny.en")
            tiny.locator(".state").filter(has_text="idle since").wait_for(timeout=30_000)
            assert "MB in memory" in tiny.locator(".state").inner_text()
            assert "default" in tiny.locator(".name").inner_text()
            assert "MB" in tiny.locator(".meta").first.inner_text()
            problems = axe_violations(page, "models panel")

            # A pull that fails is shown plainly in the dialog.
            page.fill("#pull-id", "nobody/nothing")
            page.press("#pull-id", "Enter")
            page.wait_for_selector("#pull-dialog[data-finished='error']", timeout=30_000)
            assert "nobody/nothing" in page.inner_text("#pull-error")
            page.keyboard.press("Escape")
            assert page.evaluate("document.activeElement.id") == "pull-id"

            # Pull from the local hub, with the keyboard; downloads wait until the dialog is seen.
            local_hub.gate = threading.Event()
            page.fill("#pull-id", MODEL_ID)
            page.press("#pull-id", "Enter")
            page.wait_for_function("document.querySelector('#pull-phase').textContent === 'download'")
            assert page.is_visible("#pull-dialog") and MODEL_ID in page.inner_text("#pull-title")
            assert "of" in page.inner_text("#pull-bytes") and "download: started" in page.inner_text("#pull-log")
            problems += axe_violations(page, "pull dialog")
            shot(page, "models-pull-dialog")
            local_hub.gate.set()
            page.wait_for_selector("#pull-dialog[data-finished='done']", timeout=120_000)
            log = page.inner_text("#pull-log")
            assert "verify: started" in log and "check: loads in" in log and f"installed {MODEL_ID}" in log
            assert page.inner_text("#pull-phase") == "installed"
            assert float(page.inner_text("#pull-elapsed").split()[0]) > 0
            assert page.evaluate("document.activeElement.id") == "pull-close"
            page.keyboard.press("Enter")  # Close
            pulled = item(page, MODEL_ID)
            pulled.wait_for()
            assert "not loaded" in pulled.locator(".state").inner_text()

            # Switch the default (keyboard), then the server's default is the pulled model.
            pulled.get_by_role("button", name=f"Use {MODEL_ID} as the default").focus()
            page.keyboard.press("Enter")
            pulled.locator(".badge").wait_for()
            with httpx.Client(base_url=server.url, timeout=30) as http:
                assert http.get("/v1/models").json()["default"] == MODEL_ID

            # Deleting the default is refused, and said so.
            pulled.get_by_role("button", name=f"Delete {MODEL_ID}").click()
            page.wait_for_selector("#models-error:not([hidden])")
            assert "is the default model" in page.inner_text("#models-error")

            # Unload the preloaded tiny.en; then make it the default again and delete the pulled one.
            tiny.get_by_role("button", name="Unload tiny.en").click()
            tiny.locator(".state").filter(has_text="not loaded").wait_for()
            tiny.get_by_role("button", name="Use tiny.en as the default").click()
            tiny.locator(".badge").wait_for()
            item(page, MODEL_ID).get_by_role("button", name=f"Delete {MODEL_ID}").click()
            item(page, MODEL_ID).wait_for(state="detached")
            assert page.is_hidden("#models-error")
            problems += axe_violations(page, "after delete")
            browser.close()
        assert not registry.pulled_dir(MODEL_ID).exists()
        assert not problems, "\n".join(problems)
        assert not errors, f"JavaScript errors: {errors}"
    finally:
        server.stop()
