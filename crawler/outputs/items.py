"""What counts as an item, and how one becomes bytes: once, for every output alike.

An item is a mapping (a dict, a Scrapy `Item`), a dataclass, an attrs class, a namedtuple,
a pydantic model, or an object with public attributes (`__dict__` or `__slots__`); names
starting with "_" are left out. A bare str, number, list or a Request-like object is not an
item (Scrapy rejects them too).

Values are written as JSON, with these rules where JSON has no exact match:
- sets become lists (sorted when their members can be sorted); tuples become lists;
- bytes become text when they are UTF-8, otherwise the item is rejected (decode or base64
  them yourself: guessing would corrupt data silently);
- NaN and infinities become null (JSON has no spelling for them);
- int, float, bool and None keys become strings ("1", "1.5", "true", "null"); when two
  keys of one mapping become the same string, the item is rejected;
- Decimal, UUID, paths and URLs become strings; dates and times ISO 8601 strings; enums
  their value; nested dataclasses, attrs classes, namedtuples and models objects;
- integers of any size are exact; nesting deeper than 254 levels is rejected.
Anything else rejects the item with a message naming the type. A rejected item is written
to no output and counted under `errors.item_serialization`.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import pathlib
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from yarl import URL

from crawler.exceptions import CrawlerError
from crawler.http import Failure, Request, Response

__all__ = ["ItemError", "Record", "csv_value", "encode", "is_item", "item_fields", "to_record"]

_MAX_DEPTH = 254  # orjson's own limit, kept on the exact path too
_NOT_ITEMS = (str, bytes, bytearray, int, float, complex, list, tuple, set, frozenset)


class ItemError(CrawlerError):
    """An item that cannot be written: the message says which value and why."""


class Record(NamedTuple):
    """An item ready for the outputs: its top-level fields and their JSON encoding."""

    fields: dict[str, Any]
    json: bytes


def is_item(obj: Any) -> bool:
    """Whether a callback's output may be an item (not a bare str, number or list)."""
    if isinstance(obj, _NOT_ITEMS):
        return isinstance(obj, tuple) and hasattr(obj, "_asdict")  # a namedtuple is one
    return obj is not None and not _is_http(obj)


def to_record(item: Any) -> Record:
    """The item's fields and JSON bytes; raises ItemError when it cannot be written."""
    fields = item_fields(item)
    return Record(fields, encode(fields))


def item_fields(item: Any) -> dict[str, Any]:
    """The item's top-level fields as a dict (the item itself when it is a dict)."""
    if type(item) is dict:
        return item
    fields = _fields(item) if is_item(item) else None
    if fields is None:
        raise ItemError(f"{type(item).__name__} is not an item: yield a dict, a dataclass, "
                        "an attrs class, a namedtuple, a pydantic model or an object with "
                        "attributes")
    return fields


def encode(value: Any) -> bytes:
    """JSON bytes for `value` under the rules above."""
    try:
        return orjson.dumps(value, default=_default)
    except TypeError as exc:
        if isinstance(exc.__cause__, ItemError):
            raise exc.__cause__ from None
        message = str(exc)
        if "Recursion limit" in message:
            raise ItemError(f"nested deeper than {_MAX_DEPTH} levels") from None
        if "Dict key must be" in message or "64-bit" in message:
            # non-string keys or big integers: the exact (slower) path
            normal = _normalise(value, 0)
            return json.dumps(normal, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False).encode()
        raise ItemError(message) from None


def csv_value(value: Any) -> str:
    """A field as CSV text: strings as they are, None and NaN empty, containers as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    text = encode(value)
    if text[:1] == b'"':  # a scalar that JSON writes as a string: dates, UUIDs, Decimals
        return str(orjson.loads(text))
    return text.decode()


def _is_http(obj: Any) -> bool:
    return isinstance(obj, Request | Response | Failure)


def _fields(obj: Any) -> dict[str, Any] | None:
    """Public fields of a structured object; None when it has none of the known shapes."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
                if not f.name.startswith("_")}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    attrs = getattr(type(obj), "__attrs_attrs__", None)
    if attrs is not None:
        return {a.name: getattr(obj, a.name) for a in attrs if not a.name.startswith("_")}
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        return dict(dump())
    if isinstance(obj, _NOT_ITEMS):
        return None
    names: list[str] = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    fields = {n: getattr(obj, n) for n in names
              if not n.startswith("_") and hasattr(obj, n)}
    if hasattr(obj, "__dict__"):
        fields.update((k, v) for k, v in vars(obj).items() if not k.startswith("_"))
    elif not names:
        return None
    return fields


def _default(obj: Any) -> Any:
    """orjson's fallback for types it does not write itself."""
    if isinstance(obj, set | frozenset):
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        try:
            return bytes(obj).decode()
        except UnicodeDecodeError:
            raise ItemError("bytes that are not UTF-8 text: decode them, or base64-encode "
                            "them, before yielding the item") from None
    if isinstance(obj, decimal.Decimal | pathlib.PurePath | URL):
        return str(obj)
    fields = _fields(obj)
    if fields is None or _is_http(obj):
        raise ItemError(f"cannot write a value of type {type(obj).__name__}")
    return fields


def _normalise(value: Any, depth: int) -> Any:
    """The value as plain JSON types, exactly: the path for what orjson refuses."""
    if depth > _MAX_DEPTH:
        raise ItemError(f"nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _key(key)
            if name in out:
                raise ItemError(f"two keys become {name!r} in JSON (e.g. 1 and '1')")
            out[name] = _normalise(item, depth + 1)
        return out
    if isinstance(value, list | tuple) and not hasattr(value, "_asdict"):
        return [_normalise(v, depth + 1) for v in value]
    if isinstance(value, enum.Enum):
        return _normalise(value.value, depth + 1)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return _normalise(_default(value), depth + 1)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    if isinstance(key, enum.Enum):
        return _key(key.value)
    raise ItemError(f"a key of type {type(key).__name__} ({key!r}) cannot be a JSON key")
