"""Audio in: every format ffmpeg reads -> 16 kHz mono float32; bad input -> AudioDecodeError."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from saywho.audio.decode import decode_audio, load_audio, stream_audio
from saywho.errors import AudioDecodeError

from .conftest import require_tools


def _sine(seconds: float, rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _wav(path: Path, data: np.ndarray, rate: int, width: int, channels: int = 1) -> Path:
    if width == 1:
        pcm = ((data * 127) + 128).astype(np.uint8)
    elif width == 2:
        pcm = (data * 32767).astype("<i2")
    else:
        raise ValueError(width)
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def _ffmpeg(tmp_path: Path, name: str, *args: str) -> Path:
    require_tools("ffmpeg")
    out = tmp_path / name
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args, str(out)], check=True)
    return out


def test_16bit_wav_is_passed_through(tmp_path: Path) -> None:
    src = _sine(1.0)
    got = decode_audio(_wav(tmp_path / "a.wav", src, 16000, 2))
    assert got.samples.dtype == np.float32
    assert len(got.samples) == 16000
    assert np.allclose(got.samples, src, atol=1e-3)


def test_8bit_unsigned_wav(tmp_path: Path) -> None:
    got = decode_audio(_wav(tmp_path / "u8.wav", _sine(1.0, 8000), 8000, 1))
    assert abs(got.duration - 1.0) < 0.01
    assert 0.4 < np.abs(got.samples).max() < 0.6


@pytest.mark.parametrize("codec", ["pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le"])
def test_wide_and_float_wav(tmp_path: Path, codec: str) -> None:
    path = _ffmpeg(tmp_path, f"{codec}.wav", "-f", "lavfi", "-i", "sine=f=440:d=1:sample_rate=44100",
                   "-c:a", codec)
    got = decode_audio(path)
    assert abs(got.duration - 1.0) < 0.01
    assert got.samples.dtype == np.float32


def test_six_channels_are_downmixed_without_gain(tmp_path: Path) -> None:
    src = _sine(1.0, 48000)
    got = decode_audio(_wav(tmp_path / "c6.wav", src, 48000, 2, channels=6))
    assert abs(got.duration - 1.0) < 0.01
    # Averaging, not summing: the level stays that of one channel.
    assert 0.4 < np.abs(got.samples).max() < 0.6


@pytest.mark.parametrize("ext,codec", [("flac", "flac"), ("mp3", "libmp3lame"), ("ogg", "libopus"),
                                       ("m4a", "aac"), ("webm", "libopus")])
def test_compressed_formats(tmp_path: Path, ext: str, codec: str) -> None:
    path = _ffmpeg(tmp_path, f"a.{ext}", "-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", codec)
    got = decode_audio(path)
    assert abs(got.duration - 2.0) < 0.1


def test_video_file_audio_track(tmp_path: Path) -> None:
    path = _ffmpeg(tmp_path, "v.mp4", "-f", "lavfi", "-i", "testsrc=d=2:s=64x64", "-f", "lavfi",
                   "-i", "sine=f=300:d=2", "-shortest", "-c:v", "libx264", "-c:a", "aac")
    assert abs(decode_audio(path).duration - 2.0) < 0.1


def test_video_without_audio_is_a_clear_error(tmp_path: Path) -> None:
    path = _ffmpeg(tmp_path, "silent.mp4", "-f", "lavfi", "-i", "testsrc=d=1:s=64x64", "-c:v", "libx264")
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        decode_audio(path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(tmp_path / "e.wav")


def test_random_bytes(tmp_path: Path) -> None:
    (tmp_path / "r.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioDecodeError):
        decode_audio(tmp_path / "r.wav")


def test_text_renamed_wav(tmp_path: Path) -> None:
    (tmp_path / "t.wav").write_text("this is not audio at all\n" * 20)
    with pytest.raises(AudioDecodeError, match="not a readable audio"):
        decode_audio(tmp_path / "t.wav")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="no such file"):
        decode_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioDecodeError, match="directory"):
        decode_audio(tmp_path)


def test_empty_upload_bytes() -> None:
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(b"")


def test_truncated_mp3_keeps_what_decodes_with_a_warning(tmp_path: Path) -> None:
    full = _ffmpeg(tmp_path, "full.mp3", "-f", "lavfi", "-i", "sine=f=300:d=6", "-c:a", "libmp3lame")
    data = full.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2])
    got = decode_audio(cut)
    assert 2.0 < got.duration < 4.0
    assert got.warnings and "ends abruptly" in got.warnings[0]


def test_mp3_cut_before_any_frame_is_an_error(tmp_path: Path) -> None:
    full = _ffmpeg(tmp_path, "full.mp3", "-f", "lavfi", "-i", "sine=f=300:d=2", "-c:a", "libmp3lame")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(full.read_bytes()[:200])
    with pytest.raises(AudioDecodeError):
        decode_audio(cut)


def test_zero_length_wav_is_an_error(tmp_path: Path) -> None:
    path = _wav(tmp_path / "z.wav", np.zeros(0, np.float32), 16000, 2)
    with pytest.raises(AudioDecodeError):
        decode_audio(path)


def test_short_clip_and_silence(tmp_path: Path) -> None:
    assert abs(decode_audio(_wav(tmp_path / "s.wav", _sine(0.2), 16000, 2)).duration - 0.2) < 1e-3
    silent = decode_audio(_wav(tmp_path / "q.wav", np.zeros(32000, np.float32), 16000, 2))
    assert silent.duration == 2.0 and not silent.samples.any()


def test_stream_audio_yields_bounded_blocks(tmp_path: Path) -> None:
    path = _wav(tmp_path / "long.wav", _sine(7.5), 16000, 2)
    blocks = list(stream_audio(path, block_s=2.0))
    assert [len(b) for b in blocks] == [32000, 32000, 32000, 24000]


def test_load_audio_accepts_arrays() -> None:
    stereo = np.stack([_sine(0.5), _sine(0.5)])
    assert load_audio(stereo).samples.shape == (8000,)
    with pytest.raises(AudioDecodeError):
        load_audio(np.zeros((2, 2, 2), np.float32))
