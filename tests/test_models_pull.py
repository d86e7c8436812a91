"""Pull from a local model hub served on 127.0.0.1 by the test (``HF_ENDPOINT``).

The hub answers the two requests a hub client makes: the file list with sizes and
checksums (``/api/models/{id}/revision/{rev}?blobs=true``) and each file with range
support (``/{id}/resolve/{rev}/{file}``). It serves the bundled tiny.en's files.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from saywho.errors import (
    ConflictError,
    InsufficientStorageError,
    ModelDownloadError,
    ModelNotFoundError,
)
from saywho.models import hub, registry

MODEL_ID = "local-hub/faster-whisper-tiny.en"


def bundled_tiny() -> Path:
    try:
        return Path(registry.resolve_asr_model("tiny.en"))
    except ModelNotFoundError:
        pytest.skip("bundled tiny.en not installed")


class Hub:
    """A tiny hub: ``files`` maps model ids to {name: bytes}; knobs for failures."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, bytes]] = {}
        self.cut_after: int | None = None  # close the connection after this many bytes of model.bin
        self.corrupt = False  # serve model.bin with one byte changed
        self.ranges: list[str] = []
        self.gate: threading.Event | None = None  # hold downloads until set

    def listing(self, model_id: str) -> dict[str, Any]:
        siblings = []
        for name, data in self.files[model_id].items():
            entry: dict[str, Any] = {"rfilename": name, "size": len(data)}
            if name == "model.bin":
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            else:
                entry["blobId"] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            siblings.append(entry)
        return {"id": model_id, "sha": "0" * 40, "siblings": [{"rfilename": ".gitattributes"}, *siblings]}

    def serve(self) -> tuple[http.server.ThreadingHTTPServer, str]:
        hub_state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path.startswith("/api/models/"):
                    model_id = path[len("/api/models/"):].split("/revision/")[0]
                    if model_id not in hub_state.files:
                        return self.send_error(404)
                    body = json.dumps(hub_state.listing(model_id)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return None
                model_id, _, rest = path.lstrip("/").partition("/resolve/")
                name = rest.partition("/")[2]
                data = hub_state.files.get(model_id, {}).get(name)
                if data is None:
                    return self.send_error(404)
                if hub_state.gate is not None:
                    hub_state.gate.wait(10)
                if name == "model.bin" and hub_state.corrupt:
                    data = bytes([data[0] ^ 1]) + data[1:]
                start = 0
                if "Range" in self.headers:
                    hub_state.ranges.append(self.headers["Range"])
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name == "model.bin" and hub_state.cut_after is not None:
                    self.wfile.write(body[: hub_state.cut_after])
                    hub_state.cut_after = None
                    self.close_connection = True
                    return None
                self.wfile.write(body)
                return None

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hub:
    source = bundled_tiny()
    state = Hub()
    state.files[MODEL_ID] = {f.name: f.read_bytes() for f in source.iterdir() if f.is_file()}
    server, url = state.serve()
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("SAYWHO_CACHE_DIR", str(tmp_path / "cache"))
    yield state
    server.shutdown()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, float, float]] = []

    def __call__(self, step: str, *, completed: float | None = None, total: float | None = None) -> None:
        self.events.append((step, completed or 0.0, total or 0.0))


def test_pull_reports_progress_and_installs_a_loadable_model(local_hub: Hub) -> None:
    hook = Recorder()
    target = hub.pull(MODEL_ID, hook=hook)
    assert target == registry.pulled_dir(MODEL_ID) and (target / "model.bin").is_file()
    downloads = [e for e in hook.events if e[0] == "download"]
    total = sum(len(b) for b in local_hub.files[MODEL_ID].values())
    assert downloads[-1] == ("download", total, total) and len(downloads) > 3
    assert [d[1] for d in downloads] == sorted(d[1] for d in downloads)  # monotonic
    assert any(e[0] == "verify" for e in hook.events)
    assert registry.resolve_asr_model(MODEL_ID) == str(target)
    rows = {r.id: r for r in registry.installed_models()}
    assert rows[MODEL_ID].state == "installed" and rows[MODEL_ID].size_bytes == total


def test_interrupted_download_resumes_with_a_range_request(local_hub: Hub) -> None:
    local_hub.cut_after = 1_000_000
    with pytest.raises(ModelDownloadError):
        hub.pull(MODEL_ID)
    partial = registry.pulled_dir(MODEL_ID).with_name(registry.pulled_dir(MODEL_ID).name + ".partial")
    assert (partial / "model.bin").stat().st_size == 1_000_000
    with pytest.raises(ModelNotFoundError, match="half-downloaded"):
        registry.resolve_asr_model(MODEL_ID)
    assert {r.id: r.state for r in registry.installed_models()}[MODEL_ID] == "partial"
    hub.pull(MODEL_ID)
    assert local_hub.ranges == ["bytes=1000000-"]
    data = local_hub.files[MODEL_ID]["model.bin"]
    assert (registry.pulled_dir(MODEL_ID) / "model.bin").read_bytes() == data
    assert not partial.exists()


def test_checksum_mismatch_is_rejected_and_nothing_installed(local_hub: Hub) -> None:
    local_hub.corrupt = True
    with pytest.raises(ModelDownloadError, match=r"checksum mismatch for model\.bin"):
        hub.pull(MODEL_ID)
    assert not registry.pulled_dir(MODEL_ID).exists()
    local_hub.corrupt = False
    hub.pull(MODEL_ID)  # the bad file was removed: the next pull fetches it whole
    assert registry.resolve_asr_model(MODEL_ID) == str(registry.pulled_dir(MODEL_ID))


def test_disk_full_is_refused_before_downloading(local_hub: Hub) -> None:
    with pytest.raises(InsufficientStorageError, match="not enough disk space"):
        hub.pull(MODEL_ID, disk_free=lambda path: 10_000_000)
    assert not registry.pulled_dir(MODEL_ID).exists()


def test_two_pulls_of_one_model_at_once(local_hub: Hub) -> None:
    local_hub.gate = threading.Event()
    errors: list[BaseException] = []
    def first_pull() -> None:
        while True:  # is_pulling below takes the lock for an instant: retry then
            try:
                hub.pull(MODEL_ID)
                return
            except ConflictError:
                time.sleep(0.005)

    first = threading.Thread(target=first_pull)
    first.start()
    try:
        deadline = time.monotonic() + 20
        while not hub.is_pulling(MODEL_ID):  # wait until the first pull holds the lock
            assert time.monotonic() < deadline, "the first pull never started"
            time.sleep(0.01)
        try:
            hub.pull(MODEL_ID)
        except ConflictError as exc:
            errors.append(exc)
    finally:
        local_hub.gate.set()
        first.join(30)
    assert errors and "already being pulled" in str(errors[0])
    assert (registry.pulled_dir(MODEL_ID) / "model.bin").read_bytes() == local_hub.files[MODEL_ID]["model.bin"]


def test_unknown_id_and_offline_hub(local_hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFoundError, match="no model here"):
        hub.pull("nobody/nothing")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ModelDownloadError, match="cannot reach the model hub"):
        hub.pull(MODEL_ID)


def test_use_rm_and_a_directory_that_is_not_a_model(local_hub: Hub, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not installed"):
        registry.set_default_asr_model(MODEL_ID)
    hub.pull(MODEL_ID)
    assert registry.set_default_asr_model(MODEL_ID) == MODEL_ID
    assert registry.default_asr_model() == MODEL_ID
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="not a CTranslate2 model directory"):
        hub.copy_local(tmp_path / "junk")
    with pytest.raises(ModelNotFoundError, match="not a CTranslate2 model directory"):
        registry.resolve_asr_model(str(tmp_path / "junk"))
    registry.remove_model(MODEL_ID)
    assert MODEL_ID not in {r.id for r in registry.installed_models()}
    with pytest.raises(ModelNotFoundError):
        registry.remove_model(MODEL_ID)


def test_copy_a_model_directory_for_air_gapped_machines(local_hub: Hub) -> None:
    model_id, target = hub.copy_local(bundled_tiny())
    assert model_id == "local/model" and (target / "model.bin").is_file()
    assert registry.resolve_asr_model(model_id) == str(target)


def _sse(response: Any) -> list[tuple[str, dict[str, Any]]]:
    events, kind = [], "message"
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            events.append((kind, json.loads(line.split(":", 1)[1])))
    return events


@pytest.mark.slow
def test_server_pull_use_unload_ttl_reload_delete(local_hub: Hub, tmp_path: Path) -> None:
    from saywho.evaluation.synth import available, speak
    from tests.server_harness import start_server

    if not available("flite:slt"):
        pytest.skip("flite not installed")
    server = start_server(tmp_path, model_ttl_s=600)
    try:
        server.wait_ready()
        http = server.http(timeout=120)
        bad = http.post("/v1/models/nobody/nothing")
        assert bad.status_code == 200  # the stream starts; the hub's 404 comes as an error event
        assert _sse(bad)[-1][1]["error"]["code"] == "model_not_found"
        assert http.post("/v1/models/not-an-id").status_code == 400
        with http.stream("POST", f"/v1/models/{MODEL_ID}") as response:
            events = _sse(response)
        progress = [d for k, d in events if k == "progress" and d["phase"] == "download"]
        assert progress and progress[-1]["completed"] == progress[-1]["total"] > 70_000_000
        assert events[-1][0] == "done" and events[-1][1]["check"]["load_ms"] > 0  # loaded and run in the worker
        assert [d["phase"] for k, d in events if k == "progress"][-1] == "check"
        assert http.put("/v1/default-model", params={"model": "nobody/nothing"}).status_code == 404
        assert http.put("/v1/default-model", params={"model": MODEL_ID}).json() == {"default": MODEL_ID}
        listing = http.get("/v1/models").json()
        ours = {m["id"]: m for m in listing["data"]}
        assert listing["default"] == MODEL_ID and ours[MODEL_ID]["default"] and not ours[MODEL_ID]["loaded"]
        assert ours["whisper-1"]["maps_to"] == MODEL_ID and ours["tts-1"]["type"] == "alias"

        audio = tmp_path / "a.wav"
        from saywho.audio.decode import write_wav

        write_wav(audio, speak("flite:slt", "The birch canoe slid on the smooth planks."))
        client = server.client()
        text = client.audio.transcriptions.create(model="whisper-1", file=audio.open("rb")).text
        assert "smooth planks" in text.lower()
        loaded = http.get("/v1/models").json()
        assert {m["id"]: m for m in loaded["data"]}[MODEL_ID]["loaded"]
        assert http.post(f"/v1/models/{MODEL_ID}/unload").json()["unloaded"] is True
        unloaded = http.get("/v1/models").json()
        assert not {m["id"]: m for m in unloaded["data"]}[MODEL_ID]["loaded"]
        assert unloaded["worker_rss_bytes"] < loaded["worker_rss_bytes"]
        assert "smooth planks" in client.audio.transcriptions.create(model="whisper-1", file=audio.open("rb")).text.lower()
        reloaded = http.get("/v1/models").json()
        row = {m["id"]: m for m in reloaded["data"]}[MODEL_ID]
        assert row["loaded"] and row["memory_bytes"] > 20_000_000 and row["ttl_s"] == 600
        assert row["idle_since"] <= time.time() and row["unload_in_s"] <= 600

        # Per-model state in the health checks.
        ready = http.get("/health/ready").json()["models"][MODEL_ID]
        assert ready["state"] == "installed"
        assert ready["loaded"] and ready["memory_bytes"] == row["memory_bytes"]
        assert http.get("/health/ready").json()["models"]["campplus"]["state"] == "installed"

        # A TTL of its own: 1 s. The idle model is unloaded (memory drops), the next request
        # loads it again (memory comes back).
        assert http.put(f"/v1/models/{MODEL_ID}/ttl", params={"ttl_s": 1}).json() == {
            "id": MODEL_ID, "ttl_s": 1.0, "own": True}
        assert http.put("/v1/models/nobody/nothing/ttl", params={"ttl_s": 1}).status_code == 404
        assert http.put(f"/v1/models/{MODEL_ID}/ttl", params={"ttl_s": "soon"}).status_code == 400
        deadline = time.monotonic() + 60
        while True:
            state = http.get("/v1/models").json()
            if not {m["id"]: m for m in state["data"]}[MODEL_ID]["loaded"]:
                break
            assert time.monotonic() < deadline, "the TTL did not unload the model"
            time.sleep(0.5)
        assert state["worker_rss_bytes"] < reloaded["worker_rss_bytes"]
        assert http.put(f"/v1/models/{MODEL_ID}/ttl").json() == {"id": MODEL_ID, "ttl_s": 600.0, "own": False}
        assert "smooth planks" in client.audio.transcriptions.create(model="whisper-1", file=audio.open("rb")).text.lower()
        again = http.get("/v1/models").json()
        assert {m["id"]: m for m in again["data"]}[MODEL_ID]["memory_bytes"] > 20_000_000
        assert again["worker_rss_bytes"] > state["worker_rss_bytes"]
        deep = http.get("/health/deep").json()
        assert deep["status"] == "ok" and deep["models"][MODEL_ID]["role"] == "asr"
        assert deep["models"][MODEL_ID]["loaded"] and deep["models"]["en_US-joe-medium"]["loaded"]

        assert http.delete(f"/v1/models/{MODEL_ID}").status_code == 400  # the default
        http.put("/v1/default-model", params={"model": "tiny.en"})
        assert http.delete(f"/v1/models/{MODEL_ID}").json()["deleted"] is True
        assert http.delete(f"/v1/models/{MODEL_ID}").status_code == 404
    finally:
        server.stop()
