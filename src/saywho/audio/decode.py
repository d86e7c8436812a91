"""Anything ffmpeg reads -> 16 kHz mono float32, and a streaming reader for long files.

Decoding goes through PyAV (ffmpeg's libraries), so WAV of any sample format, FLAC,
MP3, Ogg/Opus, M4A/AAC, WebM and the audio track of video files all work. Multichannel
audio is downmixed. A file that stops mid-stream yields what was decodable plus a
warning; a file with nothing decodable raises ``AudioDecodeError``.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from saywho.errors import AudioDecodeError, AudioTooLongError
from saywho.types import SAMPLE_RATE

if TYPE_CHECKING:
    from collections.abc import Iterator

logger = logging.getLogger(__name__)

AudioSource = str | os.PathLike[str] | bytes | BinaryIO


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """Decoded samples (16 kHz mono float32) and what went wrong on the way, if anything."""

    samples: np.ndarray  # (num_samples,) float32
    warnings: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _name(source: AudioSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) or "<upload>"


def _open(source: AudioSource) -> Any:  # an av container
    import av

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioDecodeError(f"{path}: no such file")
        if path.is_dir():
            raise AudioDecodeError(f"{path}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioDecodeError(f"{path}: the file is empty")
        target: str | BinaryIO = str(path)
    elif isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioDecodeError("the upload is empty")
        target = io.BytesIO(source)
    else:
        target = source
    try:
        container = av.open(target, mode="r", metadata_errors="ignore")
    except Exception as exc:
        raise AudioDecodeError(f"{_name(source)}: not a readable audio or video file ({_short(exc)})") from None
    if not container.streams.audio:
        container.close()
        raise AudioDecodeError(f"{_name(source)}: the file has no audio stream")
    return container


def _mono(planes: np.ndarray) -> np.ndarray:
    """(channels, samples) planar float -> (samples,) mean over channels."""
    if planes.ndim == 1:
        return planes
    if planes.shape[0] == 1:
        return planes[0]
    return planes.mean(axis=0)


def _declared_duration(container: Any, stream: Any) -> float | None:
    """The duration a header promises (None when the container only estimates it)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _short(exc: BaseException) -> str:
    raw = getattr(exc, "strerror", None) or str(exc)
    text = raw.strip().splitlines()[0] if raw.strip() else type(exc).__name__
    return text[:160]


def stream_audio(
    source: AudioSource, *, block_s: float = 30.0, warnings: list[str] | None = None,
    max_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Decode incrementally, yielding float32 mono 16 kHz blocks of about ``block_s``.

    The whole file is never held in memory. Problems met after some audio was
    decoded are appended to ``warnings`` (when given) and logged; decoding stops there.
    With ``max_s``, decoding stops with ``AudioTooLongError`` as soon as more than
    ``max_s`` seconds came out (whatever the header said).
    """
    import av

    container = _open(source)
    block = int(block_s * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    pending_len = 0
    produced = 0
    try:
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        # Keep the channel layout through resampling and average channels ourselves:
        # ffmpeg's own downmix sums some layouts (5.1 -> mono gains up to 3.4x).
        resampler = av.AudioResampler(format="fltp", layout=None, rate=SAMPLE_RATE)
        declared = _declared_duration(container, stream)

        def frames() -> Iterator[np.ndarray]:
            try:
                for frame in container.decode(stream):
                    frame.pts = None  # let the resampler ignore timestamp gaps
                    for out in resampler.resample(frame):
                        yield _mono(out.to_ndarray())
            except (av.error.EOFError, av.error.InvalidDataError, ValueError, OSError) as exc:
                message = f"{_name(source)}: decoding stopped early ({_short(exc)}); kept what was decodable"
                if warnings is not None:
                    warnings.append(message)
                logger.warning("%s", message)
            for out in resampler.resample(None):
                yield _mono(out.to_ndarray())

        limit = None if max_s is None else int(max_s * SAMPLE_RATE)
        for samples in frames():
            pending.append(samples.astype(np.float32, copy=False))
            pending_len += len(samples)
            if limit is not None and produced + pending_len > limit:
                raise AudioTooLongError(f"{_name(source)}: the audio lasts more than {max_s:.0f} s, the limit")
            while pending_len >= block:
                joined = np.concatenate(pending)
                yield joined[:block]
                produced += block
                rest = joined[block:]
                pending, pending_len = ([rest], len(rest)) if len(rest) else ([], 0)
        if pending_len:
            produced += pending_len
            yield np.concatenate(pending)
        decoded_s = produced / SAMPLE_RATE
        if declared is not None and produced and decoded_s < declared - max(1.0, 0.02 * declared):
            message = (
                f"{_name(source)}: the file ends abruptly at {decoded_s:.1f} s of a declared "
                f"{declared:.1f} s; kept what was decodable"
            )
            if warnings is not None:
                warnings.append(message)
            logger.warning("%s", message)
    except (AudioDecodeError, AudioTooLongError):
        raise
    except Exception as exc:
        if produced == 0 and pending_len == 0:
            raise AudioDecodeError(f"{_name(source)}: cannot decode audio ({_short(exc)})") from None
        message = f"{_name(source)}: decoding stopped early ({_short(exc)}); kept what was decodable"
        if warnings is not None:
            warnings.append(message)
        logger.warning("%s", message)
    finally:
        container.close()


def decode_audio(source: AudioSource, *, max_s: float | None = None) -> DecodedAudio:
    """Decode a whole file (path, bytes or file object) to 16 kHz mono float32
    (at most ``max_s`` seconds: beyond, ``AudioTooLongError``)."""
    warnings: list[str] = []
    blocks = list(stream_audio(source, warnings=warnings, max_s=max_s))
    if not blocks:
        if warnings:
            raise AudioDecodeError(warnings[0].replace("; kept what was decodable", ""))
        raise AudioDecodeError(f"{_name(source)}: the file holds no audio samples")
    samples = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return DecodedAudio(samples=np.ascontiguousarray(samples, dtype=np.float32), warnings=tuple(warnings))


def load_audio(source: AudioSource | np.ndarray) -> DecodedAudio:
    """Like ``decode_audio`` but also accepts an array that is already 16 kHz mono."""
    if isinstance(source, np.ndarray):
        samples = source.astype(np.float32, copy=False)
        if samples.ndim == 2:  # (channels, samples) or (samples, channels)
            samples = samples.mean(axis=0 if samples.shape[0] < samples.shape[1] else 1)
        if samples.ndim != 1:
            raise AudioDecodeError("an audio array must be 1-D (mono) or 2-D (multichannel)")
        return DecodedAudio(samples=np.ascontiguousarray(samples))
    return decode_audio(source)


def probe_duration(source: AudioSource) -> float | None:
    """Container duration in seconds without decoding, or None when unknown.

    Reads the header only (a path, bytes or a file object), so it is cheap whatever the
    file holds: the admission check before any full decode."""
    container = _open(source)
    try:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / 1_000_000
        return None
    finally:
        container.close()


def remux(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy the first audio stream of ``source`` into ``target`` (same codec, no
    re-encoding; the format from ``target``'s suffix). A file written this way declares
    its duration: MediaRecorder's WebM does not, so browsers play it as "0:00"."""
    import av

    container = _open(source)
    try:
        stream = container.streams.audio[0]
        with av.open(os.fspath(target), "w") as out:
            copy = out.add_stream_from_template(stream)
            for packet in container.demux(stream):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = copy
                out.mux(packet)
    finally:
        container.close()


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV (used by tests, benchmarks and the server)."""
    import wave

    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
