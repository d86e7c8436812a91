"""One way to turn the frozen dataclasses of ``saywho.types`` (and friends) into JSON
and back, generated from their type hints, so that no field can be forgotten.

``dump(value)`` gives plain JSON data with a ``"schema"`` version at the top;
``load(cls, data)`` rebuilds the value and checks the version. Field names are the
dataclass's own. Used wherever saywho stores its values: job options and results,
chunk results of long recordings. (The public output formats, such as the ``json``
writer and the per-chunk HTTP contract, are documented shapes of their own in
``saywho.formats`` and ``ChunkResult.to_dict``.)
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from saywho.errors import InvalidOptionError

# Bump when a stored shape changes incompatibly; ``load`` refuses other versions.
SCHEMA_VERSION = 1

T = TypeVar("T")

__all__ = ["SCHEMA_VERSION", "dump", "from_data", "load", "to_data"]


def dump(value: Any) -> dict[str, Any]:
    """A dataclass value as JSON data: ``{"schema": SCHEMA_VERSION, **fields}``."""
    data = to_data(value)
    if not isinstance(data, dict):
        raise TypeError(f"dump() takes a dataclass instance, got {type(value).__name__}")
    return {"schema": SCHEMA_VERSION, **data}


def load(cls: type[T], data: Mapping[str, Any]) -> T:
    """The ``cls`` value that ``dump`` wrote; InvalidOptionError on a foreign schema."""
    schema = data.get("schema")
    if schema != SCHEMA_VERSION:
        raise InvalidOptionError(f"stored {cls.__name__} has schema {schema!r}, this saywho reads {SCHEMA_VERSION}")
    return from_data(cls, {k: v for k, v in data.items() if k != "schema"})


def to_data(value: Any) -> Any:
    """Dataclasses -> dicts, tuples -> lists, recursively; other values as they are."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [to_data(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_data(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` (a dataclass or a typing form) from JSON data.

    Missing dataclass fields take their defaults (data written before a field existed);
    unknown keys are an error (data from a newer saywho).
    """
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(data, Mapping):
            raise InvalidOptionError(f"expected an object for {tp.__name__}, got {type(data).__name__}")
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = set(data) - names
        if unknown:
            raise InvalidOptionError(f"unknown fields for {tp.__name__}: {', '.join(sorted(unknown))}")
        return tp(**{k: from_data(hints[k], v) for k, v in data.items()})
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
        # Lists go to the sequence member of the union, scalars to the scalar one.
        if isinstance(data, list):
            candidates = [a for a in candidates if typing.get_origin(a) in (tuple, list)] or candidates
        else:
            candidates = [a for a in candidates if typing.get_origin(a) not in (tuple, list)] or candidates
        return from_data(candidates[0], data)
    if origin is typing.Literal:
        if data not in args:
            raise InvalidOptionError(f"{data!r} is not one of {', '.join(map(repr, args))}")
        return data
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], v) for v in data)
        return tuple(from_data(a, v) for a, v in zip(args, data, strict=True))
    if origin is list:
        return [from_data(args[0], v) for v in data]
    if origin is dict:
        return {k: from_data(args[1], v) for k, v in data.items()}
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if tp is Any:
        return data
    return data
