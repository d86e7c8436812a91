"""Speaker fingerprints: Kaldi-compatible fbank + CAM++ (3D-Speaker), in plain torch.

A fingerprint is a unit-norm 192-d vector; two stretches of speech by the same voice
have a high cosine similarity. Features are computed once per recording; any set of
its 10 ms frames (a span, or the frames where one local speaker talks alone in a
window) is then mean-normalised and embedded, in length-sorted batches.

CAM++ (Wang et al., 2023; 3D-Speaker, Apache-2.0): a 2-D conv front end (FCM), a
densely connected TDNN with context-aware masking, statistics pooling and a 192-d
linear layer. The code is ours; the weights are 3D-Speaker's zh/en "common advanced"
checkpoint.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
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
    from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 192
NUM_MEL_BINS = 80
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
# fbank of a long signal is computed this many frames (60 s) at a time.
FBANK_BLOCK_FRAMES = 6_000
_FFT_SIZE = 512
# Items shorter than this (in 10 ms frames) are tiled up to it: pooling needs a few frames.
MIN_FRAMES = 25


# ---------------------------------------------------------------------------
# Kaldi fbank (torchaudio.compliance.kaldi.fbank defaults as 3D-Speaker uses them)
# ---------------------------------------------------------------------------


def _mel(hz: torch.Tensor | float) -> torch.Tensor:
    return 1127.0 * torch.log1p(torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def _mel_banks(num_bins: int = NUM_MEL_BINS, low_hz: float = 20.0, sr: int = SAMPLE_RATE) -> torch.Tensor:
    """(num_bins, FFT/2 + 1) triangular filters on Kaldi's mel scale; Nyquist weight 0."""
    mel_low, mel_high = _mel(low_hz), _mel(sr / 2)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = _mel(torch.arange(_FFT_SIZE // 2, dtype=torch.float64) * sr / _FFT_SIZE).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1)).float()


_MEL_BANKS = _mel_banks()
_POVEY = torch.hann_window(FRAME_LENGTH, periodic=False, dtype=torch.float64).pow(0.85).float()


def fbank(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """80-dim log mel filterbank, Kaldi-compatible: (samples,) -> (frames, 80).

    25 ms povey windows every 10 ms (snip edges), DC removed, pre-emphasis 0.97,
    512-point power spectrum, no dither, log floored at float eps. Not mean-normalised
    (each embedded item is normalised on its own frames).
    """
    wave = torch.as_tensor(audio, dtype=torch.float32).reshape(-1)
    if wave.numel() < FRAME_LENGTH:
        return torch.zeros(0, NUM_MEL_BINS)
    num_frames = 1 + (wave.numel() - FRAME_LENGTH) // FRAME_SHIFT
    if num_frames <= FBANK_BLOCK_FRAMES:
        return _fbank_frames(wave.unfold(0, FRAME_LENGTH, FRAME_SHIFT))
    # Frames are independent: computed a block at a time, the spectra of a long chunk
    # (about 8 bytes x 512 per frame, twice over) never exist all at once.
    out = torch.empty(num_frames, NUM_MEL_BINS)
    for first in range(0, num_frames, FBANK_BLOCK_FRAMES):
        last = min(first + FBANK_BLOCK_FRAMES, num_frames)
        piece = wave[first * FRAME_SHIFT : (last - 1) * FRAME_SHIFT + FRAME_LENGTH]
        out[first:last] = _fbank_frames(piece.unfold(0, FRAME_LENGTH, FRAME_SHIFT))
    return out


def _fbank_frames(frames: torch.Tensor) -> torch.Tensor:
    """(T, 400) raw frames -> (T, 80) log mel energies."""
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = (frames - 0.97 * previous) * _POVEY
    power = torch.fft.rfft(frames, n=_FFT_SIZE).abs().pow(2)  # (T, 257)
    energies = power @ _MEL_BANKS.T  # (T, 80)
    return energies.clamp_min(torch.finfo(torch.float32).eps).log()


def feature_frame_centers(num_feature_frames: int) -> np.ndarray:
    """Centre time (s) of each fbank frame."""
    return (np.arange(num_feature_frames) * FRAME_SHIFT + FRAME_LENGTH / 2) / SAMPLE_RATE


# ---------------------------------------------------------------------------
# CAM++ (parameter names match 3D-Speaker's checkpoint)
# ---------------------------------------------------------------------------


def _bn_relu(channels: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("batchnorm", nn.BatchNorm1d(channels))
    seq.add_module("relu", nn.ReLU(inplace=True))
    return seq


class _BasicResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _FCM(nn.Module):
    """2-D conv front end: (B, 80, T) -> (B, 32 * 10, T); frequency strided by 8."""

    def __init__(self, channels: int = 32, feat_dim: int = NUM_MEL_BINS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_BasicResBlock(channels, channels, 2), _BasicResBlock(channels, channels, 1))
        self.layer2 = nn.Sequential(_BasicResBlock(channels, channels, 2), _BasicResBlock(channels, channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))  # (B, C, F/8, T)
        return out.flatten(1, 2)


class _TDNNLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)
        self.nonlinear = _bn_relu(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class _CAMLayer(nn.Module):
    """Context-aware masking: a local conv gated by utterance- and segment-level context."""

    def __init__(self, bn_ch: int, out_ch: int, kernel: int, dilation: int, reduction: int = 2) -> None:
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(bn_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(bn_ch, bn_ch // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_ch // reduction, out_ch, 1)

    @staticmethod
    def _segment_pooling(x: torch.Tensor, seg_len: int = 100) -> torch.Tensor:
        seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        return seg.repeat_interleave(seg_len, dim=-1)[..., : x.shape[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self._segment_pooling(x)
        return y * torch.sigmoid(self.linear2(self.relu(self.linear1(context))))


class _CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, bn_ch: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(in_ch)
        self.linear1 = nn.Conv1d(in_ch, bn_ch, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_ch)
        self.cam_layer = _CAMLayer(bn_ch, out_ch, kernel, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class _CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, layers: int, in_ch: int, growth: int, bn_ch: int, kernel: int, dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}", _CAMDenseTDNNLayer(in_ch + i * growth, growth, bn_ch, kernel, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _TransitLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_ch)
        self.linear = nn.Conv1d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # dim=1, not -1: torch's ONNX exporter gives this Concat axis 2 for -1.
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=1)


class _DenseLayer(nn.Module):
    """Linear projection to the embedding, then a non-affine batch norm."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_ch, out_ch, 1, bias=False)
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_ch, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CAMPPlus(nn.Module):
    """(batch, frames, 80) mean-normalised fbank -> (batch, 192) embedding (not normalised)."""

    def __init__(
        self, feat_dim: int = NUM_MEL_BINS, embedding_size: int = EMBEDDING_DIM, growth: int = 32, init_ch: int = 128
    ) -> None:
        super().__init__()
        self.head = _FCM(feat_dim=feat_dim)
        channels = self.head.out_channels
        self.xvector = nn.Sequential()
        self.xvector.add_module("tdnn", _TDNNLayer(channels, init_ch, 5, stride=2))
        channels = init_ch
        for i, (layers, kernel, dilation) in enumerate(((12, 3, 1), (24, 3, 2), (16, 3, 2))):
            self.xvector.add_module(
                f"block{i + 1}", _CAMDenseTDNNBlock(layers, channels, growth, 4 * growth, kernel, dilation)
            )
            channels += layers * growth
            self.xvector.add_module(f"transit{i + 1}", _TransitLayer(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", _bn_relu(channels))
        self.xvector.add_module("stats", _StatsPool())
        self.xvector.add_module("dense", _DenseLayer(channels * 2, embedding_size))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.xvector(self.head(features.transpose(1, 2)))


def load_embedding_model(path: str | Path | None = None) -> CAMPPlus:
    """Build CAM++ and load 3D-Speaker's checkpoint strictly (a plain state dict)."""

    path = Path(path) if path is not None else models.embedding_weights()
    if not path.is_file():
        raise ModelNotFoundError(f"embedding weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    model = CAMPPlus()
    model.load_state_dict(state, strict=True)
    return model.eval()


# The process-wide CAM++ model on torch, loaded once on first use.
get_torch_model = process_wide(load_embedding_model)


def load_onnx_model() -> onnx_runtime.OnnxModel | None:
    """CAM++ on ONNX Runtime, exported from our module once (None: use torch)."""
    return onnx_runtime.load(
        "campplus", load_embedding_model, models.embedding_weights(), torch.zeros(2, 150, NUM_MEL_BINS),
        input_name="features", output_name="embeddings",
        dynamic_axes={"features": {0: "batch", 1: "frames"}, "embeddings": {0: "batch"}},
    )


get_onnx_model = process_wide(load_onnx_model)

# (batch, frames, 80) -> (batch, 192): CAM++ or its ONNX export.
EmbeddingModel = CAMPPlus | onnx_runtime.OnnxModel | onnx_runtime.OnDevice


def get_model(device: str = "cpu") -> EmbeddingModel:
    """The process-wide CAM++ on the backend chosen for ``device``
    (``onnx_runtime.choose_backend``)."""
    return onnx_runtime.model_for(device, get_onnx_model, get_torch_model)


# ---------------------------------------------------------------------------
# Embedding sets of frames
# ---------------------------------------------------------------------------


def _tile(x: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat (T, 80) along time up to ``length`` frames (padding that keeps statistics)."""
    reps = math.ceil(length / x.shape[0])
    return x.repeat(reps, 1)[:length]


# Feature frames (10 ms each) in one CAM++ batch. CAM++'s activations grow with the
# batch: 16,000 frames peaked at 1.48 GB of RSS for 5 minutes of audio, 4,000 frames at
# 0.68 GB, and ran no slower (diarize on 5 min of the dev recordings).
MAX_BATCH_FRAMES = 4_000


def embed_frame_sets(
    features: torch.Tensor,
    frame_sets: Sequence[np.ndarray],
    *,
    model: EmbeddingModel | None = None,
    max_batch_frames: int = MAX_BATCH_FRAMES,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """One unit-norm fingerprint per set of fbank frame indices: -> (n, 192) float32.

    ``features`` is ``fbank(audio)``; each set's frames are concatenated in order (gaps
    cut out), mean-normalised, and embedded. Sets are sorted by length and batched, the
    shorter items of a batch tiled to its longest. An empty set gives a zero vector.
    """
    out = np.zeros((len(frame_sets), EMBEDDING_DIM), dtype=np.float32)
    items = [(i, np.asarray(s, dtype=np.int64)) for i, s in enumerate(frame_sets) if len(s) > 0]
    if not items:
        return out
    model = model or get_model()
    items.sort(key=lambda item: len(item[1]))
    done = 0
    with torch.inference_mode():
        while done < len(items):
            # Grow the batch while (count x longest) stays under the frame budget.
            end = done + 1
            while end < len(items) and (end + 1 - done) * max(len(items[end][1]), MIN_FRAMES) <= max_batch_frames:
                end += 1
            batch = items[done:end]
            length = max(len(batch[-1][1]), MIN_FRAMES)
            tensors = []
            for _, frames in batch:
                x = features[torch.from_numpy(frames)]
                tensors.append(_tile(x - x.mean(dim=0, keepdim=True), length))
            vectors = model(torch.stack(tensors))  # (B, 192)
            vectors = F.normalize(vectors, dim=-1).numpy()
            for (i, _), v in zip(batch, vectors, strict=True):
                out[i] = v
            done = end
            if on_batch is not None:
                on_batch(done, len(items))
    return out


def embed(
    audio: np.ndarray,
    spans: Sequence[tuple[float, float]] | None = None,
    *,
    model: EmbeddingModel | None = None,
    workers: int = 1,
) -> np.ndarray:
    """Unit-norm fingerprints of ``spans`` (seconds) of 16 kHz mono ``audio``: (n, 192).

    ``spans=None`` embeds the whole recording (n = 1). A span with no full 25 ms frame
    gives a zero vector. ``workers`` > 1 shares the spans among that many threads (torch
    and ONNX Runtime release the GIL: with one intra-op thread each, 2 threads on 2 cores
    took 0.6x the time of one).
    """
    features = fbank(audio)  # (T, 80)
    if spans is None:
        spans = [(0.0, len(audio) / SAMPLE_RATE)]
    sets = []
    for start, end in spans:
        first = max(0, math.ceil(start * SAMPLE_RATE / FRAME_SHIFT))
        last = min(len(features), int((end * SAMPLE_RATE - FRAME_LENGTH) // FRAME_SHIFT) + 1)
        sets.append(np.arange(first, max(first, last)))
    if workers <= 1 or len(sets) < 2:
        return embed_frame_sets(features, sets, model=model)
    model = model or get_model()
    by_length = sorted(range(len(sets)), key=lambda i: len(sets[i]))
    shares = [by_length[w::workers] for w in range(workers)]  # alike in frames
    out = np.zeros((len(sets), EMBEDDING_DIM), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed") as pool:
        # Smaller batches per thread: each thread allocates in its own heap arena, and with
        # MAX_BATCH_FRAMES / workers each, `saywho transcribe` of 2 minutes peaked 80 MB higher.
        budget = max(MAX_BATCH_FRAMES // (2 * workers), MIN_FRAMES)
        done = pool.map(lambda share: embed_frame_sets(features, [sets[i] for i in share], model=model,
                                                       max_batch_frames=budget), shares)
        for share, vectors in zip(shares, done, strict=True):
            out[share] = vectors
    return out


def embed_masked(
    features: torch.Tensor,
    mask: np.ndarray,
    mask_start_s: float,
    mask_step_s: float,
    *,
    model: EmbeddingModel | None = None,
) -> np.ndarray:
    """Fingerprints of masked speech: (n, mask_frames) activity, e.g. one local speaker
    of one window per row, sampled every ``mask_step_s`` from ``mask_start_s`` (centre
    of frame 0). Returns (n, 192); rows with no active frame are zero vectors.
    """
    return embed_frame_sets(
        features, [masked_frames(row, mask_start_s, mask_step_s, len(features)) for row in mask], model=model
    )


def masked_frames(mask: np.ndarray, mask_start_s: float, mask_step_s: float, num_feature_frames: int) -> np.ndarray:
    """Indices of the fbank frames whose centre falls on an active frame of ``mask``.

    ``mask`` is (mask_frames,) 0/1, its frame ``i`` centred at ``mask_start_s + i * mask_step_s``.
    """
    active = np.flatnonzero(np.asarray(mask) > 0)
    if len(active) == 0:
        return active
    centers = feature_frame_centers(num_feature_frames)
    lo = np.searchsorted(centers, mask_start_s + (active[0] - 0.5) * mask_step_s)
    hi = np.searchsorted(centers, mask_start_s + (active[-1] + 0.5) * mask_step_s)
    candidates = np.arange(lo, hi)
    nearest = np.rint((centers[candidates] - mask_start_s) / mask_step_s).astype(np.int64)
    nearest = np.clip(nearest, 0, len(mask) - 1)
    return candidates[np.asarray(mask)[nearest] > 0]
