"""``saywho transcribe FILE...``: recordings -> who said what."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from saywho.cli import outputs
from saywho.errors import InvalidOptionError
from saywho.formats import CLI_FORMATS, get_writer
from saywho.models.registry import default_asr_model
from saywho.speakers.service import library_identifier
from saywho.types import Identifier, SpeakerCount, TranscribeOptions, Transcript


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe",
        help="transcribe recordings with speaker labels",
        description="Transcribe audio or video files into who said what.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files (anything ffmpeg reads)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input) or directory (several inputs); default: stdout")
    p.add_argument("-f", "--format", choices=CLI_FORMATS,
                   help="output format (default: from -o's extension, else txt)")
    p.add_argument("-m", "--model",
                   help="speech model: bundled alias (tiny.en, base), pulled hub id, local CTranslate2 dir "
                   "(default: the one chosen with `saywho models use`, else tiny.en)")
    p.add_argument("-l", "--language", help="language code (default: detect)")
    p.add_argument("--task", choices=("transcribe", "translate"), default="transcribe",
                   help="translate into English (multilingual models)")
    g = add_speaker_count_args(p)
    g.add_argument("--no-diarize", action="store_true", help="transcribe only, no speaker labels")
    g.add_argument("--no-identify", action="store_true", help="keep Speaker_N labels: no names from the library")
    g.add_argument("--speakers-db", metavar="PATH", help="speaker library (default: $SAYWHO_SPEAKERS_DB, else "
                   "<data dir>/speakers.db, the data dir being $SAYWHO_DATA_DIR or ~/.local/share/saywho; "
                   "the server's too)")
    add_decoding_args(p)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for ASR (default: all)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where ASR and diarization run (default: cpu)")
    p.add_argument("--compute-type", default="int8", help="CTranslate2 compute type (default: int8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_long_recording_args(p)
    p.set_defaults(func=run)


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    """Decoder options, named as faster-whisper and OpenAI name them."""
    g = p.add_argument_group("decoding")
    g.add_argument("--beam-size", type=int, default=1, help="decoder beam size (default: 1, greedy)")
    g.add_argument("--temperature", type=_temperatures, default=None, metavar="T[,T...]",
                   help="sampling temperature, or a comma-separated fallback list such as 0,0.2,0.4 "
                   "(default: 0, deterministic; above 0 the text may change from run to run)")
    g.add_argument("--initial-prompt", metavar="TEXT",
                   help="text that conditions the first window (spelling, names, style); OpenAI's 'prompt'")
    g.add_argument("--hotwords", metavar="TEXT", help="words or phrases to favour (names, jargon)")
    g.add_argument("--vad", action=argparse.BooleanOptionalAction, default=True,
                   help="skip long silences with Silero VAD before ASR (default: on)")
    g.add_argument("--condition-on-previous-text", action=argparse.BooleanOptionalAction, default=False,
                   help="feed each window the text of the previous one (faster-whisper's default; off here: "
                   "with temperature 0 it can loop)")


def _temperatures(value: str) -> float | tuple[float, ...]:
    try:
        temps = tuple(float(t) for t in value.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a temperature or comma-separated list: {value!r}") from None
    if not temps or any(not 0.0 <= t <= 1.0 for t in temps):
        raise argparse.ArgumentTypeError("temperatures must lie between 0 and 1")
    return temps[0] if len(temps) == 1 else temps


def add_speaker_count_args(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The speaker-count hints (shared with ``saywho diarize``)."""
    g = p.add_argument_group("speakers")
    g.add_argument("--num-speakers", type=int, metavar="N", help="exact number of speakers")
    g.add_argument("--min-speakers", type=int, metavar="A", help="at least this many speakers")
    g.add_argument("--max-speakers", type=int, metavar="B", help="at most this many speakers")
    return g


def add_long_recording_args(p: argparse.ArgumentParser) -> None:
    """Chunked processing of long recordings (shared with ``saywho diarize``)."""
    lg = p.add_argument_group(
        "long recordings",
        "Files longer than the chunk length plus a minute (or any file, with --chunk-minutes, "
        "--work-dir or --resume) are cut into chunks in pauses, processed chunk by chunk, and "
        "stitched with the same speaker labels throughout.",
    )
    lg.add_argument("--chunk-minutes", type=float, metavar="M",
                    help="chunk length in minutes (default: 5); forces chunked processing")
    lg.add_argument("--workers", type=int, default=1, metavar="N",
                    help="chunks processed in parallel by N local processes (default: 1)")
    lg.add_argument("--chunks-per-worker", type=int, default=None, metavar="N",
                    help="with one worker, run chunks in a worker process replaced every N chunks "
                    "(default: 1; 0: in this process: about 30%% slower, a lower peak)")
    lg.add_argument("--ray", metavar="ADDRESS", default=os.environ.get("SAYWHO_RAY_ADDRESS") or None,
                    help="run chunks on the Ray cluster at ADDRESS ('auto', 'ray://host:10001', or "
                    "'local'; default: $SAYWHO_RAY_ADDRESS); needs saywho[ray]")
    lg.add_argument("--work-dir", metavar="DIR",
                    help="keep the chunks and their results here (default: a directory in the cache, "
                    "removed after success)")
    lg.add_argument("--resume", action="store_true",
                    help="reuse the finished chunks of an interrupted run of the same file and settings")


def check_long_recording_args(args: argparse.Namespace) -> None:
    """Bad long-recording options fail before any file is read, long or short."""
    if args.workers < 1:
        raise InvalidOptionError("--workers must be at least 1")
    if args.chunks_per_worker is not None and args.chunks_per_worker < 0:
        raise InvalidOptionError("--chunks-per-worker must be 0 (in this process) or more")


def options_from_args(args: argparse.Namespace) -> TranscribeOptions:
    from saywho.runtime import check_device  # lazy: `saywho --help` stays fast (no torch)

    check_device(args.device)
    check_long_recording_args(args)
    if args.beam_size < 1:
        raise InvalidOptionError("--beam-size must be at least 1")
    if args.threads < 0:
        raise InvalidOptionError("--threads must be 0 (all cores) or more")
    decoding: dict[str, Any] = {}
    if getattr(args, "temperature", None) is not None:
        decoding["temperature"] = args.temperature
    return TranscribeOptions(
        **decoding,
        initial_prompt=getattr(args, "initial_prompt", None) or None,
        hotwords=getattr(args, "hotwords", None) or None,
        vad_filter=getattr(args, "vad", True),
        condition_on_previous_text=getattr(args, "condition_on_previous_text", False),
        model=args.model or default_asr_model(),
        language=args.language,
        task=args.task,
        diarize=not args.no_diarize,
        speakers=SpeakerCount(num=args.num_speakers, min=args.min_speakers, max=args.max_speakers),
        beam_size=args.beam_size,
        cpu_threads=args.threads,
        device=args.device,
        compute_type=args.compute_type,
        identify=not getattr(args, "no_identify", False),
    )


def _library_identifier(args: argparse.Namespace, options: TranscribeOptions) -> Identifier | None:
    """The speaker library's matcher, when identification is on and the library has voices."""
    if not (options.diarize and options.identify):
        return None
    explicit = getattr(args, "speakers_db", None)
    return library_identifier(
        explicit, strict=bool(explicit),
        warn=lambda message: print(f"saywho: warning: {message}; speakers stay anonymous", file=sys.stderr),
    )


def _chunk_s(args: argparse.Namespace) -> float:
    from saywho.longform.plan import DEFAULT_CHUNK_S  # lazy: `saywho --help` stays fast (no torch)

    minutes = getattr(args, "chunk_minutes", None)
    if minutes is not None and minutes <= 0:
        raise InvalidOptionError("--chunk-minutes must be positive")
    return DEFAULT_CHUNK_S if minutes is None else 60.0 * minutes


def _is_long(path: str, args: argparse.Namespace) -> bool:
    """Chunked processing: asked for, or the file is longer than a chunk and a minute."""
    if args.chunk_minutes is not None or args.work_dir or args.resume:
        return True
    from saywho.audio.decode import probe_duration  # lazy: `saywho --help` stays fast (no torch)
    from saywho.errors import AudioDecodeError  # lazy: `saywho --help` stays fast (no torch)

    try:
        duration = probe_duration(path)
    except AudioDecodeError:
        return False  # the single-pass path reports the error
    return duration is None or duration > _chunk_s(args) + 60.0


def _transcribe_long(path: str, options: TranscribeOptions, args: argparse.Namespace, bar: Any,
                     identifier: Identifier | None, processor: Any = None) -> Transcript:
    from saywho.longform.run import CHUNKS_PER_WORKER, transcribe_long  # lazy: `saywho --help` stays fast
    from saywho.longform.store import default_work_dir  # lazy: `saywho --help` stays fast (no torch)

    per_worker = CHUNKS_PER_WORKER if args.chunks_per_worker is None else args.chunks_per_worker
    chunk_s = _chunk_s(args)
    work_dir = args.work_dir or default_work_dir(path, options, chunk_s)

    def hook(step: str, *, completed: float | None = None, total: float | None = None) -> None:
        if bar is None:
            return
        if step == "chunks" and total:
            bar.extra = f"chunks {int(completed or 0)}/{int(total)}"
        bar(step, completed=completed, total=total)

    try:
        transcript = transcribe_long(path, options, chunk_s=chunk_s, workers=args.workers, ray_address=args.ray,
                                     work_dir=work_dir, resume=args.resume, hook=hook, identifier=identifier,
                                     processor=processor,
                                     chunks_per_worker=(per_worker or None) if args.workers == 1 else None)
    except KeyboardInterrupt:
        if bar:
            bar.close(interrupted=True)
        print(f"saywho: finished chunks are kept in {work_dir}; run the same command with --resume "
              "to continue", file=sys.stderr)
        raise
    if not args.work_dir:
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)
    return transcript


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)  # bad options fail here, before torch is imported
    writer = get_writer(outputs.format_for(args.format, args.output, len(args.files), CLI_FORMATS, "txt"))
    targets = outputs.targets(args.files, args.output, writer.extension)

    from saywho.cli.progressbar import ProgressBar  # lazy: `saywho --help` stays fast (no torch)
    from saywho.pipeline import transcribe  # lazy: `saywho --help` and option errors stay fast (no torch)
    from saywho.progress import LONG_STEPS, STEPS  # lazy: `saywho --help` stays fast (no torch)
    from saywho.runtime import tune_malloc  # lazy: `saywho --help` stays fast (no torch)

    tune_malloc()  # before any model loads: several files in a row reuse one heap
    identifier = _library_identifier(args, options)
    failures = 0
    for path, target in zip(args.files, targets, strict=True):
        show = not args.quiet and sys.stderr.isatty()
        long = _is_long(path, args)
        bar = ProgressBar(label=f"{Path(path).name} " if len(args.files) > 1 else "",
                          steps=LONG_STEPS if long else STEPS) if show else None
        try:
            if long:
                transcript = _transcribe_long(path, options, args, bar, identifier)
            else:
                transcript = transcribe(path, options, hook=bar, identifier=identifier)
        except BaseException:
            if bar:
                bar.close(interrupted=True)
            if len(args.files) == 1 or not isinstance(sys.exc_info()[1], Exception):
                raise
            from saywho.errors import SaywhoError  # lazy: `saywho --help` stays fast (no torch)

            exc = sys.exc_info()[1]
            message = exc.message if isinstance(exc, SaywhoError) else f"{type(exc).__name__}: {exc}"
            print(f"saywho: error: {message}", file=sys.stderr)
            failures += 1
            continue
        if bar:
            bar.close()
        for warning in transcript.warnings:
            print(f"saywho: warning: {warning}", file=sys.stderr)
        text = writer.render(transcript, uri=Path(path).stem, granularities=("segment", "word"))
        if target is None:
            if len(args.files) > 1:
                sys.stdout.write(f"==> {path} <==\n")
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            outputs.write(target, text, quiet=args.quiet)
    return 1 if failures else 0
