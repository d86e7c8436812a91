"""The diarization models on ONNX Runtime: exported from our torch modules, cached, run.

Segmentation-3.0 and CAM++ are exported once, at first use, from the torch modules of
``segmentation.py`` and ``embedding.py`` (their weights and code are the source of
truth) to ``<cache>/onnx/NAME-KEY.onnx``. KEY hashes the weights file, the module's
source file and the torch, onnx and onnxruntime versions, so a new checkpoint, a code
change or an upgrade exports again; the file is written to a temporary name and
renamed, so a crash or a second process never leaves half a model behind.

On 2 CPU cores ONNX Runtime took less CPU time than torch for the same outputs
(``bench/diarization_speed.py``, docs/BENCHMARKS.md): the default on a CPU. The torch
path stays: with ``--device cuda``, when ONNX Runtime or ``onnx`` (the exporter's
dependency) is missing, or when ``SAYWHO_DIARIZATION_BACKEND=torch`` asks for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import torch

from saywho.errors import BackendUnavailable, InvalidOptionError
from saywho.models import registry as models
from saywho.runtime import split_device

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from torch import nn

logger = logging.getLogger(__name__)

Backend = Literal["onnx", "torch"]
M = TypeVar("M")
# torch (the default), onnx, or auto: ONNX Runtime on a CPU, torch on any other device.
# ONNX Runtime costs 0.89x torch's CPU time for a whole `saywho diarize` (same dev DER), but
# the first use in a fresh cache exports both models (about 35 s on 2 cores): opt-in until
# the export happens at install time.
DEFAULT_BACKEND = "torch"
BACKEND_ENV = "SAYWHO_DIARIZATION_BACKEND"
BACKENDS = ("auto", "onnx", "torch")
OPSET = 17
# Bumped when the export itself changes (names, axes, opset) without a code change.
EXPORT_REVISION = 1


def requested_backend() -> str:
    """``$SAYWHO_DIARIZATION_BACKEND`` (auto, onnx or torch; default ``DEFAULT_BACKEND``)."""
    value = os.environ.get(BACKEND_ENV, DEFAULT_BACKEND).strip().lower() or DEFAULT_BACKEND
    if value not in BACKENDS:
        raise InvalidOptionError(f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {value!r}",
                                 param=BACKEND_ENV)
    return value


def onnx_available() -> bool:
    """Whether ONNX Runtime and the exporter's ``onnx`` package are installed."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def choose_backend(device: str = "cpu") -> Backend:
    """The backend the diarization models run on for ``device``.

    ``auto``: ONNX Runtime on a CPU where it is installed, else torch. A GPU always
    runs torch (onnxruntime is the CPU build).
    ``onnx`` asked for explicitly but not installed is a ``BackendUnavailable`` error.
    """
    wanted = requested_backend()
    if wanted == "torch" or device != "cpu":  # ONNX Runtime runs here on the CPU only
        return "torch"
    if wanted == "onnx":
        if not onnx_available():
            raise BackendUnavailable(f"{BACKEND_ENV}=onnx but onnxruntime or onnx is not installed")
        return "onnx"
    return "onnx" if device == "cpu" and onnx_available() else "torch"


# ---------------------------------------------------------------------------
# Export, cached
# ---------------------------------------------------------------------------


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(weights: Path, source: Path) -> str:
    """Hash of what the exported graph depends on: weights, our code (the module's
    source file), the tool versions."""
    from importlib.metadata import version  # not `import onnx`: a second of CPU at every start

    parts = [
        _file_hash(weights), _file_hash(source) if source.is_file() else "",
        torch.__version__, version("onnx"), version("onnxruntime"), str(OPSET), str(EXPORT_REVISION),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def exported(
    name: str,
    build: Callable[[], nn.Module],
    weights: Path,
    example: torch.Tensor,
    *,
    input_name: str,
    output_name: str,
    dynamic_axes: Mapping[str, Mapping[int, str]],
    cache: Path | None = None,
) -> Path:
    """The ONNX file of the module ``build()`` returns (exported now unless cached):
    ``<cache>/onnx/NAME-KEY.onnx``. The torch module is built only to export it."""
    folder = (cache or models.cache_dir()) / "onnx"
    source = Path(sys.modules[build.__module__].__file__ or "")
    path = folder / f"{name}-{cache_key(weights, source)}.onnx"
    if path.is_file():
        return path
    module = build()
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("exporting %s to ONNX (once): %s", name, path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".onnx.part", dir=folder)
    os.close(fd)
    try:
        # The TorchScript exporter (dynamo=False): it needs only ``onnx``, handles the LSTM
        # and the dynamic axes, and warns that it is deprecated; its warnings would only
        # reach the user's terminal.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (example,), tmp, input_names=[input_name], output_names=[output_name],
                dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()}, opset_version=OPSET, dynamo=False,
            )
        os.replace(tmp, path)  # atomic: readers see no file or the whole file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


class OnnxModel:
    """An exported model as a drop-in for its torch module: tensor in, tensor out.

    One ONNX Runtime session per intra-op thread count, created when first needed, so
    the model follows ``torch.get_num_threads()`` as the torch module would (the
    pipeline gives diarization half of the cores while ASR runs). Sessions are
    thread-safe for ``run``.
    """

    def __init__(self, path: Path, input_name: str, output_names: Sequence[str] | None = None) -> None:
        self.path = path
        self.input_name = input_name
        self.output_names = list(output_names) if output_names else None
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    def session(self, threads: int | None = None) -> object:
        import onnxruntime as ort

        threads = max(1, threads or torch.get_num_threads())
        with self._lock:
            if threads not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                # ONNX Runtime's arena keeps the largest batch's activations for good: 2 min of
                # diarization peaked at 1000 MiB with it, 693 MiB without, at the same speed.
                options.enable_cpu_mem_arena = False
                if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
                    # Busy cores (runtime.configure_openmp): idle threads sleep rather than spin.
                    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[threads] = ort.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[threads]

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        session = self.session()
        array = inputs.detach().cpu().contiguous().numpy()
        (out,) = session.run(self.output_names, {self.input_name: array})  # type: ignore[attr-defined]
        return torch.from_numpy(out)


def load(
    name: str,
    build: Callable[[], nn.Module],
    weights: Path,
    example: torch.Tensor,
    *,
    input_name: str,
    output_name: str,
    dynamic_axes: Mapping[str, Mapping[int, str]],
) -> OnnxModel | None:
    """The exported model, ready to run; None (logged) when export or loading fails
    and torch should run instead. With ``SAYWHO_DIARIZATION_BACKEND=onnx`` a failure is
    a ``BackendUnavailable`` error instead."""
    try:
        path = exported(name, build, weights, example, input_name=input_name, output_name=output_name,
                        dynamic_axes=dynamic_axes)
        model = OnnxModel(path, input_name)
        model.session()  # a broken file fails here, not in the middle of a recording
        return model
    except Exception as exc:  # the exporter and ONNX Runtime raise many types; torch still works
        if requested_backend() == "onnx":
            raise BackendUnavailable(f"{name}: ONNX export or loading failed: {exc}") from exc
        logger.warning("%s: ONNX export or loading failed (%s); running it on torch", name, exc)
        return None


class OnDevice:
    """A torch module moved to a GPU, called like the CPU one: inputs go to the device,
    outputs come back to the CPU (the rest of the pipeline is numpy)."""

    def __init__(self, module: nn.Module, device: str) -> None:
        import copy

        self.device = torch.device(device)
        if self.device.type == "cuda":
            # Full fp32 in cuDNN's convolutions and LSTMs (TF32 is torch's default there),
            # so that a GPU finds the turns the CPU finds.
            torch.backends.cudnn.allow_tf32 = False
        self.module = copy.deepcopy(module).to(self.device).eval()

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(inputs.to(self.device, non_blocking=True)).float().cpu()


_on_device: dict[tuple[int, str], OnDevice] = {}
_on_device_lock = threading.Lock()


def model_for(
    device: str, onnx_model: Callable[[], OnnxModel | None], torch_model: Callable[[], M]
) -> M | OnnxModel | OnDevice:
    """The process-wide model for ``device``: ``onnx_model()`` when ``choose_backend``
    picks ONNX Runtime and it loaded, else ``torch_model()`` (a copy on the GPU for
    ``cuda``, made once per device)."""
    if choose_backend(device) == "onnx":
        model = onnx_model()
        if model is not None:
            return model
    module = torch_model()
    if device == "cpu":
        return module
    kind, index = split_device(device)
    key = (id(module), f"{kind}:{index}")
    with _on_device_lock:
        if key not in _on_device:
            _on_device[key] = OnDevice(module, device)  # type: ignore[arg-type]
        return _on_device[key]
