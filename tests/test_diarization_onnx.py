"""The diarization models on ONNX Runtime: backend choice, the cached export, and the
same answers as torch on real speech (models: slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from saywho.diarization import onnx_runtime
from saywho.errors import BackendUnavailable, InvalidOptionError
from tests.conftest import require_tools

# ---------------------------------------------------------------------------
# Backend choice
# ---------------------------------------------------------------------------


def test_auto_is_onnx_on_a_cpu_and_torch_elsewhere(monkeypatch):
    monkeypatch.delenv(onnx_runtime.BACKEND_ENV, raising=False)
    assert onnx_runtime.choose_backend("cpu") == "torch"  # the default until the export moves to install time
    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "auto")
    assert onnx_runtime.choose_backend("cpu") == "onnx"
    assert onnx_runtime.choose_backend("cuda") == "torch"


def test_a_gpu_runs_torch_even_when_onnx_is_asked_for(monkeypatch):
    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "onnx")
    assert onnx_runtime.choose_backend("cuda") == "torch"
    assert onnx_runtime.choose_backend("cuda:1") == "torch"


def test_a_gpu_gets_one_copy_of_the_torch_module_per_device(monkeypatch):
    made = []

    class Recorder:
        def __init__(self, module, device):
            made.append(device)

    monkeypatch.setattr(onnx_runtime, "OnDevice", Recorder)
    monkeypatch.setattr(onnx_runtime, "_on_device", {})
    module = _Tiny()
    first = onnx_runtime.model_for("cuda", lambda: None, lambda: module)
    assert onnx_runtime.model_for("cuda:0", lambda: None, lambda: module) is first
    assert onnx_runtime.model_for("cuda:1", lambda: None, lambda: module) is not first
    assert made == ["cuda", "cuda:1"]
    assert onnx_runtime.model_for("cpu", lambda: None, lambda: module) is module


def test_a_module_on_a_device_is_called_like_the_cpu_one():
    module = _Tiny()
    moved = onnx_runtime.OnDevice(module, "cpu")  # the same path as cuda: a copy, inputs moved, outputs back
    x = torch.randn(3, 10, 4)
    with torch.inference_mode():
        assert torch.allclose(moved(x), module(x))
    assert moved.module is not module and moved(x).device.type == "cpu"


def test_the_environment_forces_a_backend(monkeypatch):
    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "torch")
    assert onnx_runtime.choose_backend("cpu") == "torch"
    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "ONNX")
    assert onnx_runtime.choose_backend("cpu") == "onnx"
    monkeypatch.setattr(onnx_runtime, "onnx_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="not installed"):
        onnx_runtime.choose_backend("cpu")
    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "tensorflow")
    with pytest.raises(InvalidOptionError, match="auto, onnx, torch"):
        onnx_runtime.choose_backend("cpu")


# ---------------------------------------------------------------------------
# Export, cache, run (a small module of this file's own)
# ---------------------------------------------------------------------------


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(4, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x.transpose(1, 2))).mean(dim=-1)


def _export(tmp_path, weights, build):
    return onnx_runtime.exported(
        "tiny", build, weights, torch.zeros(2, 10, 4), input_name="x", output_name="y",
        dynamic_axes={"x": {0: "batch", 1: "frames"}, "y": {0: "batch"}}, cache=tmp_path,
    )


def test_export_is_cached_by_weights_and_runs_like_torch(tmp_path):
    weights = tmp_path / "tiny.pt"
    weights.write_bytes(b"version 1")
    built = []

    def build() -> nn.Module:
        built.append(1)
        return _Tiny().eval()

    path = _export(tmp_path, weights, build)
    assert path.is_file() and path.parent == tmp_path / "onnx" and path.name.startswith("tiny-")
    assert _export(tmp_path, weights, build) == path and len(built) == 1  # cached: not built again
    assert not list(path.parent.glob("*.part"))  # the temporary file was renamed, none left over

    x = torch.randn(3, 17, 4)  # another batch size and length than the export's example
    with torch.inference_mode():
        expected = _Tiny().eval()(x)
    got = onnx_runtime.OnnxModel(path, "x")(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)

    weights.write_bytes(b"version 2")  # new weights: a new file
    assert _export(tmp_path, weights, build) != path and len(built) == 2


def test_a_failed_export_falls_back_to_torch_unless_onnx_is_forced(tmp_path, monkeypatch):
    weights = tmp_path / "tiny.pt"
    weights.write_bytes(b"w")
    monkeypatch.setattr(onnx_runtime.models, "cache_dir", lambda: tmp_path)

    def broken() -> nn.Module:
        raise RuntimeError("exporter exploded")

    kwargs = {"input_name": "x", "output_name": "y", "dynamic_axes": {"x": {0: "batch"}}}
    monkeypatch.delenv(onnx_runtime.BACKEND_ENV, raising=False)
    assert onnx_runtime.load("tiny", broken, weights, torch.zeros(1, 10, 4), **kwargs) is None
    assert not list((tmp_path / "onnx").glob("*"))  # nothing half-written left behind
    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "onnx")
    with pytest.raises(BackendUnavailable, match="exporter exploded"):
        onnx_runtime.load("tiny", broken, weights, torch.zeros(1, 10, 4), **kwargs)


# ---------------------------------------------------------------------------
# The real models: the same answers as torch
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_voices():
    require_tools("flite", "espeak-ng")
    from saywho.evaluation.synth import SENTENCES, conversation

    lines = [(v, s) for v, s in zip(["flite:slt", "espeak:en-us", "flite:slt", "espeak:en-us"],
                                      SENTENCES[4:8], strict=True)]
    return conversation(lines, gap_s=0.6)


@pytest.mark.slow
def test_onnx_models_match_torch_on_speech(two_voices, monkeypatch):
    from saywho.diarization import embedding, segmentation

    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "auto")
    seg_onnx, emb_onnx = segmentation.get_model("cpu"), embedding.get_model("cpu")
    assert isinstance(seg_onnx, onnx_runtime.OnnxModel) and isinstance(emb_onnx, onnx_runtime.OnnxModel)
    seg_torch, emb_torch = segmentation.get_torch_model(), embedding.get_torch_model()
    assert onnx_runtime.choose_backend("cuda") == "torch"  # a GPU keeps torch (see the tests above)

    audio = two_voices.samples / np.abs(two_voices.samples).max()
    _, torch_lp = segmentation.segment_log_probs(audio, step_s=1.25, model=seg_torch)
    _, onnx_lp = segmentation.segment_log_probs(audio, step_s=1.25, model=seg_onnx)
    assert np.abs(torch_lp - onnx_lp).max() < 1e-2
    assert np.array_equal(segmentation.binarize(torch_lp), segmentation.binarize(onnx_lp))  # every frame

    features = embedding.fbank(audio)
    sets = [np.arange(a, a + n) for a, n in ((0, 300), (150, 125), (400, 30), (700, 600), (1000, 12))]
    torch_fp = embedding.embed_frame_sets(features, sets, model=emb_torch)
    onnx_fp = embedding.embed_frame_sets(features, sets, model=emb_onnx)
    assert ((torch_fp * onnx_fp).sum(axis=1) > 0.999).all()


@pytest.mark.slow
def test_diarization_is_the_same_on_both_backends(two_voices, monkeypatch):
    from saywho.diarization import pipeline

    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "torch")
    on_torch = pipeline.diarize(two_voices.samples)
    monkeypatch.setenv(onnx_runtime.BACKEND_ENV, "onnx")
    on_onnx = pipeline.diarize(two_voices.samples)
    assert on_onnx.speakers == on_torch.speakers == ("Speaker_0", "Speaker_1")
    assert len(on_onnx.turns) == len(on_torch.turns)
    for a, b in zip(on_onnx.turns, on_torch.turns, strict=True):
        assert a.speaker == b.speaker
        assert abs(a.start - b.start) < 0.05 and abs(a.end - b.end) < 0.05
