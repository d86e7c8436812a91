"""Reading Wyoming events from an untrusted peer, with bounds.

The ``wyoming`` package's reader trusts the header: a ``payload_length`` of 10 GB is
read into memory, and a line of valid JSON without a ``type`` raises ``KeyError``.
This reader refuses both with ``InvalidOptionError`` so the connection can be closed
with an ``error`` event; everything else is the package's own ``Event``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from wyoming.event import Event

from saywho.errors import InvalidOptionError, PayloadTooLargeError

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger(__name__)

# An audio-chunk is a few KB (HA sends 10-100 ms); a second of 48 kHz 32-bit stereo is 384 KB.
MAX_PAYLOAD_BYTES = 1 << 20
MAX_DATA_BYTES = 1 << 20


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None at a clean end of stream.

    Raises ``InvalidOptionError`` for bytes that are not a Wyoming event,
    ``PayloadTooLargeError`` for an event over the limits, and
    ``asyncio.IncompleteReadError`` when the peer leaves mid-event.
    """
    try:
        line = await reader.readline()
    except ValueError:  # asyncio: the line is over the reader's limit
        raise PayloadTooLargeError("an event header is longer than the stream limit") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidOptionError("not a Wyoming event: the header line is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise InvalidOptionError("not a Wyoming event: the header has no 'type'")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise InvalidOptionError("not a Wyoming event: 'data' is not an object")
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    if data_length:
        try:
            extra = json.loads(await reader.readexactly(data_length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidOptionError("not a Wyoming event: the data block is not JSON") from None
        if not isinstance(extra, dict):
            raise InvalidOptionError("not a Wyoming event: the data block is not an object")
        data = {**data, **extra}
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    payload = await reader.readexactly(payload_length) if payload_length else None
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict, key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidOptionError(f"not a Wyoming event: '{key}' is not a byte count")
    if value > limit:
        raise PayloadTooLargeError(f"an event's {key} of {value} bytes is over the limit of {limit}")
    return value
