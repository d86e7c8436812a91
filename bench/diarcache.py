"""Disk cache for the expensive diarization stages, and the dev-set helpers the
diarization benches share.

``enable()`` wraps ``saywho.diarization.segmentation.segment_log_probs`` and
``saywho.diarization.embedding.embed_frame_sets`` so that their results are memoised on disk
(``$SAYWHO_DIARCACHE``, default ``/tmp/diarcache``), keyed by a hash of their exact
inputs (the audio and step; the fbank features and each frame set). A cached run of
``diarize`` on a 30 s clip then costs milliseconds, so clustering experiments can sweep
settings over many files. Keys include the two model modules' source and the torch
thread count, so a change to either starts afresh. Results match an uncached run
closely but not always bit for bit: only the missing frame sets are embedded, so
batches differ, and a borderline clip (trn08) can then change its count. Figures
written into docs/BENCHMARKS.md come from a cache filled by the default settings' own
run (clear ``$SAYWHO_DIARCACHE`` first).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_DIR = Path(os.environ.get("SAYWHO_DIARCACHE", "/tmp/diarcache"))
ROOT = Path(__file__).resolve().parents[1]
DEV_DIARIZATION = ROOT.parent / "shared" / "data" / "dev" / "diarization"
DEV_ASR = ROOT.parent / "shared" / "data" / "dev" / "asr"

_enabled = False
_emb: dict[bytes, np.ndarray] = {}
_emb_dirty = 0
_salt = b""


def _h(*parts: bytes) -> bytes:
    d = hashlib.sha1()
    for p in parts:
        d.update(p)
    return d.digest()


def _emb_path() -> Path:
    return CACHE_DIR / "embeddings.pkl"


def flush() -> None:
    """Write the embedding memo to disk (called after each cached batch)."""
    global _emb_dirty
    if not _emb_dirty:
        return
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = _emb_path().with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(_emb, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(_emb_path())
    _emb_dirty = 0


def enable() -> None:
    """Memoise segmentation and CAM++ embeddings on disk (idempotent)."""
    global _enabled
    if _enabled:
        return
    _enabled = True
    import torch

    from saywho.diarization import embedding, segmentation

    global _salt
    _salt = _h(*(Path(m.__file__).read_bytes() for m in (embedding, segmentation)),
               str(torch.get_num_threads()).encode())
    if _emb_path().is_file():
        with open(_emb_path(), "rb") as f:
            _emb.update(pickle.load(f))

    original_segment = segmentation.segment_log_probs
    original_embed = embedding.embed_frame_sets

    def segment_log_probs(audio, *, step_s, **kwargs):
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        key = _h(_salt, audio.tobytes(), repr(step_s).encode()).hex()
        path = CACHE_DIR / f"lp-{key}.npz"
        if path.is_file():
            z = np.load(path)
            return z["starts"], z["log_probs"]
        starts, log_probs = original_segment(audio, step_s=step_s, **kwargs)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(path, starts=starts, log_probs=log_probs)
        return starts, log_probs

    def embed_frame_sets(features, frame_sets, **kwargs):
        global _emb_dirty
        fkey = _h(_salt, np.ascontiguousarray(torch.as_tensor(features).numpy()).tobytes())
        keys = [_h(fkey, np.asarray(s, dtype=np.int64).tobytes()) for s in frame_sets]
        missing = [i for i, k in enumerate(keys) if k not in _emb]
        if missing:
            kwargs.pop("on_batch", None)
            vectors = original_embed(features, [frame_sets[i] for i in missing], **kwargs)
            for i, v in zip(missing, vectors, strict=True):
                _emb[keys[i]] = v
            _emb_dirty += len(missing)
            flush()
        out = np.zeros((len(frame_sets), embedding.EMBEDDING_DIM), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = _emb[k]
        return out

    segmentation.segment_log_probs = segment_log_probs
    embedding.embed_frame_sets = embed_frame_sets
    # diarization imports the modules (not the functions), so the wrappers are seen.


# --- the dev set -------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """A recording with reference turns, scored over ``uem`` (seconds)."""

    uri: str
    audio: np.ndarray
    reference: tuple[tuple[float, float, str], ...]
    uem: tuple[float, float]

    def num_speakers(self) -> int:
        """Reference speakers with speech inside the scored region."""
        lo, hi = self.uem
        return len({s for a, b, s in self.reference if min(b, hi) > max(a, lo)})


def load_wav(path: Path) -> np.ndarray:
    from scipy.io import wavfile

    sr, data = wavfile.read(path)
    assert sr == 16_000, path
    if data.dtype == np.int16:
        data = data.astype(np.float32) / 32768.0
    data = data.astype(np.float32)
    return data.mean(axis=1) if data.ndim == 2 else data


def _rttm(path: Path, uri: str) -> tuple[tuple[float, float, str], ...]:
    out = []
    for line in path.read_text().splitlines():
        p = line.split()
        if len(p) >= 8 and p[0] == "SPEAKER" and p[1] == uri:
            out.append((float(p[3]), float(p[3]) + float(p[4]), p[7]))
    return tuple(out)


def _uem(path: Path, uri: str, default: tuple[float, float]) -> tuple[float, float]:
    if path is not None and path.is_file():
        for line in path.read_text().splitlines():
            p = line.split()
            if len(p) >= 4 and p[0] == uri:
                return float(p[2]), float(p[3])
    return default


DEV_URIS = ("sample", "dev00", "dev01", "trn00", "trn03", "trn06", "trn08")


def dev_clips(data: Path = DEV_DIARIZATION) -> list[Clip]:
    """The 7 dev diarization clips (2, 2, 2, 3, 2, 3, 4 speakers); [] when absent."""
    clips = []
    for uri in DEV_URIS:
        wav = data / f"{uri}.wav"
        if not wav.is_file():
            continue
        rttm = data / ("sample.rttm" if uri == "sample" else "ami_dev.rttm" if uri.startswith("dev") else "ami_train.rttm")
        uem = None if uri == "sample" else rttm.with_suffix(".uem")
        audio = load_wav(wav)
        clips.append(Clip(uri, audio, _rttm(rttm, uri), _uem(uem, uri, (0.0, len(audio) / 16_000))))
    return clips


# --- scoring -----------------------------------------------------------------------


def der_components(clip: Clip, turns) -> dict[str, float]:
    """pyannote.metrics DER components (no collar, overlap scored) of ``turns``
    ((start, end, speaker) or SpeakerTurn) against the clip's reference."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref = Annotation(uri=clip.uri)
    for i, (a, b, s) in enumerate(clip.reference):
        ref[Segment(a, b), i] = s
    hyp = Annotation(uri=clip.uri)
    for i, t in enumerate(turns):
        a, b, s = (t.start, t.end, t.speaker) if hasattr(t, "speaker") else t
        hyp[Segment(a, b), i] = s
    uem = Timeline([Segment(*clip.uem)], uri=clip.uri)
    return DiarizationErrorRate(collar=0.0, skip_overlap=False)(ref, hyp, uem=uem, detailed=True)


def pooled(components: list[dict[str, float]]) -> float:
    total = sum(c["total"] for c in components)
    err = sum(c["missed detection"] + c["false alarm"] + c["confusion"] for c in components)
    return err / max(total, 1e-9)
