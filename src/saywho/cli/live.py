"""``saywho live SOURCE``: live transcription with speakers in the terminal."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from saywho.streaming import LiveEvent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live",
        help="transcribe a live stream with speaker labels",
        description="Transcribe live audio as it comes: raw 16-bit mono PCM on stdin (-), or anything ffmpeg "
                    "reads (a file, an http or rtsp URL). Prints one line per utterance piece with its "
                    "speaker, or JSON lines of every event. Example: ffmpeg -i rtsp://... -f s16le -ac 1 "
                    "-ar 16000 - | saywho live -",
    )
    p.add_argument("source", metavar="SOURCE", help="- for raw PCM16 on stdin, else a file or URL")
    p.add_argument("--rate", type=int, default=16000, help="sample rate of raw PCM on stdin (default: 16000)")
    p.add_argument("--realtime", action="store_true",
                   help="play a file at real-time speed (for demos; default: as fast as it decodes)")
    p.add_argument("-m", "--model", default=None, help="speech model (default: the installed default, tiny.en)")
    p.add_argument("--language", help="language code (default: detect; English-only models: en)")
    p.add_argument("--silence-ms", type=int, default=500, help="silence that ends an utterance (default: 500)")
    p.add_argument("--json", action="store_true", help="JSON lines of every event instead of text lines")
    p.add_argument("--speakers-db", metavar="PATH", help="speaker library for names (default: the shared one)")
    p.add_argument("--no-identify", dest="identify", action="store_false", help="do not name known voices")
    p.set_defaults(func=run)


def _line(event: LiveEvent, as_json: bool) -> str | None:
    from dataclasses import asdict

    from saywho.streaming import Completed, SpeakerSegment  # lazy: `saywho --help` stays fast (no torch)

    if as_json:
        return json.dumps({"type": type(event).__name__, **asdict(event)})
    if isinstance(event, SpeakerSegment) and event.text:
        return f"[{event.start:7.2f} - {event.end:7.2f}] {event.name or event.speaker}: {event.text}"
    if isinstance(event, Completed) and event.lag_s > 2.0:
        return f"(behind the audio by {event.lag_s:.1f} s)"
    return None


def run(args: argparse.Namespace) -> int:
    from saywho.errors import InvalidOptionError  # lazy: `saywho --help` stays fast (no torch)
    from saywho.models.registry import default_asr_model  # lazy: `saywho --help` stays fast (no torch)
    from saywho.speakers.library import SpeakerLibrary  # lazy: `saywho --help` stays fast (no torch)
    from saywho.streaming import LiveOptions, LiveSession  # lazy: `saywho --help` stays fast (no torch)
    from saywho.streaming.sources import decoded_blocks, paced, pcm_blocks  # lazy: `saywho --help` stays fast

    if args.rate <= 0:
        raise InvalidOptionError(f"--rate must be positive (got {args.rate})", param="rate")
    library = SpeakerLibrary(args.speakers_db)
    session = LiveSession(
        LiveOptions(model=args.model or default_asr_model(), language=args.language,
                    silence_duration_ms=args.silence_ms, identify=args.identify),
        known=lambda: library.known() if library.exists() else {},
    )
    if args.source == "-":
        lagging = paced(pcm_blocks(sys.stdin.buffer, rate=args.rate), wait=False)  # the pipe sets the pace
    else:
        lagging = paced(decoded_blocks(args.source), wait=args.realtime)
    for block, lag in lagging:
        _print(session.feed(block, lag_s=lag), args.json)
        if session.speakers_due:  # the utterance just completed: its speakers now, not with the next block
            _print(session.flush(), args.json)
    _print(session.finish(), args.json)
    _print(session.flush(), args.json)  # the last utterance's speakers
    return 0


def _print(events: list[LiveEvent], as_json: bool) -> None:
    for event in events:
        line = _line(event, as_json)
        if line is not None:
            print(line, flush=True)
