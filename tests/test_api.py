"""The package-level API stays callable whatever modules were imported."""

from __future__ import annotations

import importlib


def test_transcribe_and_diarize_are_functions() -> None:
    import saywho

    for name in ("saywho.pipeline", "saywho.diarization.pipeline", "saywho.longform.run", "saywho.formats"):
        importlib.import_module(name)
    assert callable(saywho.transcribe) and callable(saywho.diarize)
