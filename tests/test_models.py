"""Model locations and the lazy, ref-counted manager (fake loader, injected clock)."""

from __future__ import annotations

import threading

import pytest

from saywho.errors import ModelNotFoundError
from saywho.models.manager import ModelManager
from saywho.models.registry import resolve_asr_model


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_manager_loads_once_and_unloads_after_ttl() -> None:
    loads: list[str] = []
    clock = Clock()
    m = ModelManager(lambda k: loads.append(k) or f"model:{k}", ttl_s=10, clock=clock)
    with m.acquire("a") as a1, m.acquire("a") as a2:
        assert a1 == a2 == "model:a"
    assert loads == ["a"] and m.loaded() == ["a"]
    clock.now = 5
    assert m.collect() == []
    clock.now = 10.5
    assert m.collect() == ["a"] and m.loaded() == []
    with m.acquire("a"):
        pass
    assert loads == ["a", "a"]


def test_model_in_use_is_never_unloaded() -> None:
    clock = Clock()
    m = ModelManager(lambda k: object(), ttl_s=1, clock=clock)
    with m.acquire("a"):
        clock.now = 100
        assert m.collect() == []
    clock.now = 102
    assert m.collect() == ["a"]


def test_per_model_ttl_memory_and_idle_since() -> None:
    """A model's own TTL, the memory its load added, when it went idle, and a change listener."""
    clock, rss, changes = Clock(), [1000], []

    def load(key: str) -> str:
        rss[0] += {"asr|big": 700, "asr|small": 50}[key]
        return key

    m = ModelManager(load, ttl_s=100, ttls={"small": 5}, name_of=lambda k: k.split("|")[1], clock=clock,
                     wall_clock=lambda: 1_000_000 + clock.now, memory=lambda: rss[0],
                     on_change=lambda: changes.append(m.loaded()))
    m.preload("asr|big")
    m.preload("asr|small")
    assert changes == [["asr|big"], ["asr|big", "asr|small"]]
    clock.now = 4
    rows = {r["name"]: r for r in m.status()}
    assert rows["big"]["memory_bytes"] == 700 and rows["small"]["memory_bytes"] == 50
    assert rows["small"]["ttl_s"] == 5 and rows["small"]["unload_in_s"] == 1.0 and rows["big"]["ttl_s"] == 100
    assert rows["small"]["idle_since"] == 1_000_000 and rows["small"]["idle_s"] == 4.0
    assert m.collect_interval() == 2.5
    clock.now = 6
    assert m.collect() == ["asr|small"] and m.loaded() == ["asr|big"]
    assert changes[-1] == ["asr|big"]
    m.set_ttl("big", 0)  # changed at run time: the next collection drops it
    assert m.collect() == ["asr|big"] and m.status() == []
    m.set_ttl("big", None)
    assert m.ttl_of("asr|big") == 100 and m.ttls() == {"small": 5}
    with m.acquire("asr|small"):
        (row,) = m.status()
        assert row["in_use"] == 1 and row["idle_since"] is None and row["unload_in_s"] is None


def test_failed_load_records_nothing() -> None:
    def boom(key: str) -> object:
        raise ModelNotFoundError(f"no {key}")

    m = ModelManager(boom)
    with pytest.raises(ModelNotFoundError), m.acquire("x"):
        pass
    assert m.loaded() == []


def test_concurrent_acquire_loads_once() -> None:
    loads = []
    gate = threading.Event()

    def slow(key: str) -> str:
        gate.wait(1)
        loads.append(key)
        return key

    m = ModelManager(slow, ttl_s=-1)
    threads = [threading.Thread(target=lambda: m.preload("k")) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert loads == ["k"]


def test_resolve_asr_model() -> None:
    assert resolve_asr_model("Systran/faster-whisper-small") == "Systran/faster-whisper-small"
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        resolve_asr_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match="not a speech-to-text"):
        resolve_asr_model("campplus")


def test_local_directory_must_hold_a_model(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"model\.bin"):
        resolve_asr_model(str(tmp_path))
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):  # a model.bin alone is not a model
        resolve_asr_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert resolve_asr_model(str(tmp_path)) == str(tmp_path)


# --- the blocked Whisper feature extractor ------------------------------------------------


@pytest.mark.parametrize("samples", [0, 150, 199, 200, 201, 401, 16_000, 16_000 * 31 + 17])
def test_blocked_whisper_features_equal_faster_whispers(samples, monkeypatch) -> None:
    # asr.load_model gives WhisperModel a feature extractor that works a block of frames
    # at a time (the whole spectrogram of a 5-minute chunk took 250 MB): same values.
    np = pytest.importorskip("numpy")
    from faster_whisper.feature_extractor import FeatureExtractor

    from saywho.asr import whisper as asr

    monkeypatch.setattr(asr, "FEATURE_BLOCK_FRAMES", 700)
    audio = (0.1 * np.random.default_rng(samples).standard_normal(samples)).astype(np.float32)
    original, blocked = FeatureExtractor(), asr._blocked_feature_extractor(FeatureExtractor())
    # Equal up to float32 rounding of the mel-filter product: with numpy 2.4's BLAS the
    # product of a block and of the whole spectrogram can differ in the last bit (6e-8).
    np.testing.assert_allclose(blocked(audio), original(audio), rtol=0, atol=1e-6)
    np.testing.assert_allclose(blocked(audio, chunk_length=20), original(audio, chunk_length=20), rtol=0, atol=1e-6)
    assert blocked(audio).shape == original(audio).shape
    assert (blocked.n_samples, blocked.nb_max_frames) == (original.n_samples, original.nb_max_frames)


def test_loaded_asr_model_uses_the_blocked_extractor() -> None:
    from saywho.asr import whisper as asr
    from saywho.types import TranscribeOptions

    model = asr.load_model(asr.model_key(TranscribeOptions()))
    assert type(model.feature_extractor).__name__ == "BlockedFeatureExtractor"


class _ReportingInference:
    """A stand-in worker service: reports tiny.en loaded, records control jobs."""

    def __init__(self) -> None:
        self.controls: list[tuple[str, dict]] = []

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def status(self) -> dict:
        return {"state": "ready", "reason": None}

    def models_status(self) -> dict:
        return {"loaded": [{"key": "asr|tiny.en|cpu|int8|0", "name": "tiny.en", "in_use": 0, "idle_s": 12.0,
                            "idle_since": 0.0, "ttl_s": 300.0, "unload_in_s": 288.0, "memory_bytes": 90_000_000}],
                "rss_bytes": 400_000_000}

    async def control(self, kind: str, payload: dict, **_: object) -> object:
        self.controls.append((kind, payload))
        return ["asr|tiny.en|cpu|int8|0"] if kind == "unload" else {}


def test_models_api_per_model_state_ttl_and_health(tmp_path) -> None:
    """The router's side, without a worker: per-model state, the TTL endpoint, health per model."""
    import time

    from fastapi.testclient import TestClient

    from saywho.server.app import create_app
    from saywho.settings import Settings

    settings = Settings(data_dir=tmp_path, model_ttls={"base": 60})
    inference = _ReportingInference()
    client = TestClient(create_app(settings, inference=inference), base_url="http://localhost")
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    tiny, voice = models["tiny.en"], models["en_US-joe-medium"]
    assert tiny["loaded"] and tiny["memory_bytes"] == 90_000_000 and tiny["unload_in_s"] == 288.0
    assert abs(tiny["idle_since"] - (time.time() - 12.0)) < 5
    assert not voice["loaded"] and voice["memory_bytes"] == 0 and voice["ttl_s"] == 300.0
    assert models["base"]["ttl_s"] == 60 and models["campplus"]["loaded"] is None

    assert client.put("/v1/models/en_US-joe-medium/ttl", params={"ttl_s": 30}).json() == {
        "id": "en_US-joe-medium", "ttl_s": 30.0, "own": True}
    assert settings.model_ttls["en_US-joe-medium"] == 30  # a restarted worker keeps it
    assert client.put("/v1/models/base/ttl").json() == {"id": "base", "ttl_s": 300.0, "own": False}
    assert client.put("/v1/models/tiny.en/ttl", params={"ttl_s": -5}).status_code == 400
    assert client.put("/v1/models/nobody/nothing/ttl", params={"ttl_s": 5}).json()["error"]["code"] == "not_found"
    assert client.post("/v1/models/0/ttl").status_code == 405  # not a pull of the hub id "0/ttl"
    assert client.post("/v1/models/tiny.en/unload").json() == {"id": "tiny.en", "unloaded": True}
    assert client.post("/v1/models/nobody/nothing/unload").status_code == 404
    assert inference.controls == [("ttl", {"model": "en_US-joe-medium", "ttl_s": 30.0}),
                                  ("ttl", {"model": "base", "ttl_s": None}), ("unload", {"model": "tiny.en"})]

    ready = client.get("/health/ready").json()["models"]
    assert ready["tiny.en"]["state"] == "installed" and ready["tiny.en"]["memory_bytes"] == 90_000_000
    assert ready["en_US-joe-medium"]["ttl_s"] == 30.0 and not ready["en_US-joe-medium"]["loaded"]
