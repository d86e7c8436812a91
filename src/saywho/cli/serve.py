"""``saywho serve``: the OpenAI-compatible HTTP server (speech-to-text with speakers, TTS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the OpenAI-compatible HTTP server",
        description="Serve /v1/audio/transcriptions, /v1/audio/speech, /v1/models and health checks. "
        "Every option can also be set in the environment (SAYWHO_HOST, SAYWHO_PORT, SAYWHO_PRELOAD...).",
    )
    p.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: 8000)")
    p.add_argument("--preload", action="append", metavar="MODEL",
                   help="load a model at start-up (repeatable): tiny.en, base, en_US-joe-medium, diarization")
    p.add_argument("--model", dest="default_model", help="default speech model (default: tiny.en)")
    p.add_argument("--slots", dest="inference_slots", type=int, help="requests running at once (default: 1)")
    p.add_argument("--queue", dest="queue_size", type=int, help="requests waiting for a slot (default: 8)")
    p.add_argument("--api-key", dest="api_keys", action="append", metavar="KEY",
                   help="require Authorization: Bearer KEY (repeatable)")
    p.add_argument("--cors-origin", dest="cors_origins", action="append", metavar="ORIGIN",
                   help="allow browser requests from ORIGIN (repeatable, * for any)")
    p.add_argument("--data-dir", help="where jobs and the speaker library live "
                   "(default: $SAYWHO_DATA_DIR or ~/.local/share/saywho, shared with the CLI)")
    p.add_argument("--speakers-db", metavar="PATH", help="speaker library file (default: $SAYWHO_SPEAKERS_DB, "
                   "else <data dir>/speakers.db: the file `saywho speakers` and `saywho transcribe` use)")
    p.add_argument("--wyoming-uri", metavar="URI",
                   help="also serve the Wyoming protocol for Home Assistant, e.g. tcp://0.0.0.0:10300 "
                   "(same speaker library; see docs/home-assistant.md)")
    p.add_argument("--no-zeroconf", dest="zeroconf", action="store_false",
                   help="with --wyoming-uri: do not advertise it by mDNS")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from saywho.server.app import create_app  # lazy: `saywho --help` stays fast (no server stack)
    from saywho.settings import Settings  # lazy: `saywho --help` stays fast (no server stack)

    overrides = {
        name: getattr(args, name)
        for name in ("host", "port", "preload", "default_model", "inference_slots", "queue_size", "api_keys",
                     "cors_origins", "data_dir", "speakers_db")
        if getattr(args, name, None) is not None
    }
    settings = Settings(**overrides)
    # The CLI configured logging at WARNING; a server reports its worker's life at INFO.
    logging.getLogger("saywho").setLevel(logging.DEBUG if args.verbose > 1 else logging.INFO)
    app = create_app(settings)
    if not args.wyoming_uri:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                    timeout_graceful_shutdown=10)
        return 0
    import asyncio

    from saywho.wyoming.server import serve, serve_options  # lazy: only with --wyoming-uri

    http = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                                         timeout_graceful_shutdown=10))
    asyncio.run(serve(serve_options(settings, args.wyoming_uri, zeroconf=args.zeroconf), beside=http.serve))
    return 0
