"""The ``saywho`` command line: one module per command."""

from saywho.cli.app import main

__all__ = ["main"]
