"""Audio in: anything ffmpeg reads -> 16 kHz mono float32, whole or streamed in blocks."""

from saywho.audio.decode import (
    AudioSource,
    DecodedAudio,
    decode_audio,
    load_audio,
    probe_duration,
    stream_audio,
    write_wav,
)

__all__ = ["AudioSource", "DecodedAudio", "decode_audio", "load_audio", "probe_duration", "stream_audio", "write_wav"]
