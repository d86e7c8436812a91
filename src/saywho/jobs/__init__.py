"""Async transcription jobs: SQLite store, runner, progress, the service the server calls."""
