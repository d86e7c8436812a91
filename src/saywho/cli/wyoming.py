"""``saywho wyoming``: the Wyoming protocol server for Home Assistant (speech-to-text with names, TTS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from saywho.wyoming.server import WyomingOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wyoming",
        help="run the Wyoming server for Home Assistant",
        description="Serve speech-to-text (with the speaker's name from the library) and Piper text-to-speech "
        "over the Wyoming protocol, advertised by zeroconf so Home Assistant finds it.",
    )
    p.add_argument("--uri", default="tcp://0.0.0.0:10300", help="where to listen: tcp://HOST:PORT or unix://PATH "
                   "(default: tcp://0.0.0.0:10300)")
    p.add_argument("-m", "--model", default="tiny.en", help="default speech model (default: tiny.en)")
    p.add_argument("--voice", default="en_US-joe-medium", help="default Piper voice (default: en_US-joe-medium)")
    p.add_argument("--speakers-db", metavar="PATH", help="speaker library (default: the one `saywho speakers` "
                   "manages: $SAYWHO_SPEAKERS_DB or <data dir>/saywho/speakers.db)")
    p.add_argument("--max-clients", type=int, default=8, metavar="N", help="connections at once (default: 8)")
    p.add_argument("--max-utterance", type=float, default=60.0, metavar="S",
                   help="longest voice command in seconds (default: 60)")
    p.add_argument("--slots", type=int, default=1, metavar="N", help="inference jobs at once (default: 1)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for speech-to-text (default: all)")
    p.add_argument("--no-zeroconf", dest="zeroconf", action="store_false", help="do not advertise by mDNS")
    p.add_argument("--zeroconf-name", metavar="NAME", help="advertised name (default: saywho-<hostname>)")
    p.add_argument("--no-transcript-streaming", dest="stream_transcript", action="store_false",
                   help="send only `transcript`, not transcript-start/-chunk/-stop")
    p.set_defaults(func=run)


def options_from(args: argparse.Namespace) -> WyomingOptions:
    from saywho.errors import InvalidOptionError  # lazy: `saywho --help` needs no wyoming
    from saywho.wyoming.server import WyomingOptions, parse_uri  # lazy: `saywho --help` needs no wyoming

    parse_uri(args.uri)
    for name, value in (("--max-clients", args.max_clients), ("--slots", args.slots)):
        if value < 1:
            raise InvalidOptionError(f"{name} must be at least 1")
    if args.max_utterance <= 0:
        raise InvalidOptionError("--max-utterance must be positive")
    return WyomingOptions(
        uri=args.uri, model=args.model, voice=args.voice, speakers_db=args.speakers_db,
        max_clients=args.max_clients, max_utterance_s=args.max_utterance, slots=args.slots,
        cpu_threads=args.threads, zeroconf=args.zeroconf, zeroconf_name=args.zeroconf_name,
        stream_transcript=args.stream_transcript,
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import logging

    from saywho.errors import SaywhoError  # lazy: `saywho --help` needs no wyoming

    try:
        from saywho.wyoming.server import serve  # lazy: `saywho --help` needs no wyoming
    except ModuleNotFoundError as exc:
        if exc.name not in ("wyoming", "zeroconf"):
            raise
        raise SaywhoError("the Wyoming server needs the 'wyoming' package: pip install 'saywho[wyoming]'") from None
    options = options_from(args)
    # The CLI configured logging at WARNING; a server reports its requests at INFO.
    logging.getLogger("saywho").setLevel(logging.DEBUG if args.verbose > 1 else logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(options))
    return 0
