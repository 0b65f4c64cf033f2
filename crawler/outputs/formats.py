"""The file formats: JSON lines, a JSON array, CSV and XML, each an Exporter
(crawler/outputs/files.py) that says how a record is encoded and how an existing file is
appended to; `make_exporter` picks one by a path's extension."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from crawler.exceptions import OutputError
from crawler.outputs.files import STDOUT, Exporter, reason
from crawler.outputs.items import Record, csv_value

__all__ = ["FORMATS", "CsvExporter", "JsonExporter", "JsonLinesExporter", "XmlExporter",
           "exporter_class", "make_exporter"]

logger = logging.getLogger(__name__)

_VALIDATE_BYTES = 64 * 1024 * 1024  # a .json or .xml to append to is parsed whole up to this


class _LineExporter(Exporter):
    """Formats with one record per line: an append adds a missing final newline."""

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._newline_needed = False

    def _read_existing(self, file: io.BufferedReader, size: int) -> None:
        file.seek(size - 1)
        if file.read(1) != b"\n":
            self._newline_needed = True

    async def begin(self) -> None:
        await super().begin()
        if self._newline_needed and not self.overwrite:
            logger.warning("%s did not end with a newline (a torn last record?): adding one "
                           "before the new records", self.name)
            await self._write_at(self._size, b"\n")
            self._size += 1
            self._keep_tail(b"\n")


class JsonLinesExporter(_LineExporter):
    """One JSON object per line; appending is natural."""

    suffix = ".jsonl"

    def encode(self, record: Record) -> bytes:
        return record.json + b"\n"


class _EnclosedExporter(Exporter):
    """Records inside an envelope (a JSON array, an XML root element), valid after every
    batch: each write ends with the closing part, which the next write overwrites.
    Subclasses give the envelope and say where an existing file's records end."""

    _HEAD = b""  # written once, before the first record
    _TAIL = b""  # after the last record, rewritten after each batch
    _FIRST = b"\n"  # before the first record
    _SEP = b"\n"  # before each later one

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._empty = True  # no record in the envelope yet

    def _read_existing(self, file: io.BufferedReader, size: int) -> None:
        """Appending continues the envelope: new records go where its closing part is."""
        end, self._empty = self._records_end(file, size)
        self._existing = end

    def _records_end(self, file: io.BufferedReader, size: int) -> tuple[int, bool]:
        """Where the existing file's closing part starts, and whether it holds no record;
        OutputError when it is not one envelope of this format."""
        raise NotImplementedError

    async def begin(self) -> None:
        await super().begin()
        if self._stream:
            await self._write_at(0, self._HEAD)
            return
        if self._size == 0:
            await self._write_at(0, self._HEAD + self._TAIL)
            self._size = len(self._HEAD)
            self._tail = self._HEAD
        else:  # continue an envelope: a normalised tail, from where its closing part was
            head = self._tail
            self._size -= len(head) - len(head.rstrip())
            self._tail = head.rstrip()
            await self._thread.run(os.ftruncate, self._fd, self._size)
            await self._write_at(self._size, self._TAIL)

    def _format_state(self) -> object:
        return self._empty

    def _restore_format(self, state: object) -> None:
        self._empty = bool(state)

    def cut_back(self, length: int) -> None:
        assert isinstance(self.path, Path)
        with self.path.open("r+b") as file:  # later writes overwrote the closing part: again
            file.truncate(length)
            file.seek(length)
            file.write(self._TAIL)

    def _layout(self, batch: list[bytes]) -> tuple[int, bytes, bytes]:
        piece = (self._FIRST if self._empty else self._SEP) + self._SEP.join(batch)
        self._empty = False
        return self._size, piece if self._stream else piece + self._TAIL, piece

    def _restore_sync(self, good: int) -> None:
        # the old tail sat at `good`; rewriting it within the file's length needs no space
        os.ftruncate(self._fd, good + len(self._TAIL))
        os.pwrite(self._fd, self._TAIL, good)

    async def close(self) -> None:
        if self._stream and self._file is not None and self.error is None:
            await self.flush()
            await self._written()
            try:
                await self._write_at(0, self._TAIL)
            except OSError as exc:
                self.failed(reason(exc))
        await super().close()


class JsonExporter(_EnclosedExporter):
    """One JSON array, valid after every batch. `indent`: each item pretty-printed
    (Scrapy's FEED_EXPORT_INDENT)."""

    suffix = ".json"
    _HEAD, _TAIL, _SEP = b"[", b"\n]\n", b",\n"

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None, indent: int | None = None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._indent = indent or None

    def _records_end(self, file: io.BufferedReader, size: int) -> tuple[int, bool]:
        refuse = OutputError(f"cannot append to {self.path}: it is not a JSON array; "
                             "use -O to overwrite it")
        if size <= _VALIDATE_BYTES:
            data = file.read()
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise refuse from None
            if not isinstance(parsed, list):
                raise refuse
            return len(data.rstrip()) - 1, not parsed
        head = file.read(4096).lstrip()  # too large to parse here: check both ends
        file.seek(size - 4096)
        tail = file.read().rstrip()
        if not head.startswith(b"[") or not tail.endswith(b"]"):
            raise refuse
        return size - 4096 + len(tail) - 1, False

    def encode(self, record: Record) -> bytes:
        if self._indent is None:
            return record.json
        if self._indent == 2:
            return orjson.dumps(orjson.loads(record.json), option=orjson.OPT_INDENT_2)
        return json.dumps(orjson.loads(record.json), indent=self._indent,
                          ensure_ascii=False).encode()


class XmlExporter(_EnclosedExporter):
    """XML as Scrapy's XmlItemExporter writes it: `<items>` around one `<item>` per record,
    a field per element, list elements as `<value>`, dicts nested. Values are the item's
    JSON values (dates as ISO text); a key that is not an XML name becomes
    `<field name="key">`, and characters XML 1.0 cannot hold become U+FFFD."""

    suffix = ".xml"
    _HEAD = b'<?xml version="1.0" encoding="utf-8"?>\n<items>'
    _TAIL = b"\n</items>\n"
    _CLOSE = b"</items>"

    def _records_end(self, file: io.BufferedReader, size: int) -> tuple[int, bool]:
        refuse = OutputError(f"cannot append to {self.path}: it is not an <items> document "
                             "as -o writes; use -O to overwrite it")
        head = file.read(4096)
        file.seek(max(0, size - 4096))
        tail = file.read().rstrip()
        if b"<items>" not in head or not tail.endswith(self._CLOSE):
            raise refuse
        if size <= _VALIDATE_BYTES:  # a whole document, or refused
            from xml.etree.ElementTree import ParseError, XMLPullParser

            parser: XMLPullParser[Any] = XMLPullParser()
            file.seek(0)
            try:
                while chunk := file.read(1 << 20):
                    parser.feed(chunk)
                parser.close()
            except ParseError:
                raise refuse from None
        end = max(0, size - 4096) + len(tail) - len(self._CLOSE)
        return end, tail[:-len(self._CLOSE)].rstrip().endswith(b"<items>")

    def encode(self, record: Record) -> bytes:
        out: list[str] = ["<item>"]
        for key, value in orjson.loads(record.json).items():
            _xml_field(out, key, value)
        out.append("</item>")
        return "".join(out).encode()


def _xml_field(out: list[str], name: str, value: Any) -> None:
    if _XML_NAME.fullmatch(name) and not name.lower().startswith("xml"):
        open_, close = f"<{name}>", f"</{name}>"
    else:
        open_, close = f'<field name="{_xml_text(name, quote=True)}">', "</field>"
    out.append(open_)
    if isinstance(value, dict):
        for key, inner in value.items():
            _xml_field(out, key, inner)
    elif isinstance(value, list):
        for inner in value:
            _xml_field(out, "value", inner)
    elif value is not None:
        out.append(_xml_text(value if isinstance(value, str) else str(value)))
    out.append(close)


def _xml_text(text: str, *, quote: bool = False) -> str:
    text = _XML_INVALID.sub("\ufffd", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


_XML_NAME = re.compile(r"[A-Za-z_][\w.\-]*")  # ASCII names: no colon (namespaces)
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class CsvExporter(_LineExporter):
    """CSV with a header from `feed_fields`, the existing file's header when appending, or
    the first item's keys. Values for other keys are left out, with one warning per key."""

    suffix = ".csv"

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._header_needed = True
        self._known: frozenset[str] = frozenset(fields or ())
        self.fields_dropped: Counter[str] = Counter()  # values left out, by key

    def _read_existing(self, file: io.BufferedReader, size: int) -> None:
        super()._read_existing(file, size)
        file.seek(0)
        text = file.read(64 * 1024).decode("utf-8", "replace")
        header = next(csv.reader(io.StringIO(text)), None)
        if header:
            if self.fields is not None and tuple(self.fields) != tuple(header):
                logger.warning("appending to %s: using its header (%s), not feed_fields",
                               self.name, ",".join(header))
            self.fields = tuple(header)
            self._known = frozenset(header)
            self._header_needed = False

    def _format_state(self) -> object:
        return self._header_needed

    def _restore_format(self, state: object) -> None:
        self._header_needed = bool(state)

    def encode(self, record: Record) -> bytes:
        row = record.fields
        if self.fields is None:
            self.fields = tuple(str(k) for k in row)
            self._known = frozenset(self.fields)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self._header_needed:
            writer.writerow(self.fields)
            self._header_needed = False
        if not self._known.issuperset(row):
            self._left_out(row)
        writer.writerow([csv_value(row.get(f)) for f in self.fields])
        return out.getvalue().encode()

    def _left_out(self, row: dict[str, Any]) -> None:
        for key in row:
            if key not in self._known:
                if not self.fields_dropped[key]:
                    logger.warning("%s has no column %r: its values are left out (set "
                                   "feed_fields to choose the columns)", self.name, key)
                self.fields_dropped[key] += 1


FORMATS: dict[str, type[Exporter]] = {
    "jsonl": JsonLinesExporter, "jsonlines": JsonLinesExporter, "jl": JsonLinesExporter,
    "json": JsonExporter, "csv": CsvExporter, "xml": XmlExporter,
}


def exporter_class(format_name: str) -> type[Exporter]:
    """The exporter for a format name or file suffix ("jsonl", ".csv", ...)."""
    cls = FORMATS.get(format_name.lower().lstrip("."))
    if cls is None:
        known = ", ".join(sorted(FORMATS))
        raise OutputError(f"unknown output format {format_name!r} (known: {known})")
    return cls


def make_exporter(path: str | os.PathLike[str], *, overwrite: bool = False,
                  fields: tuple[str, ...] | None = None,
                  format: str | None = None, indent: int | None = None) -> Exporter:
    """The exporter for a file path (or "-" for standard output), by its extension unless
    `format` is given; no extension means JSON lines. `indent` pretty-prints .json items."""
    target = os.fspath(path)
    if format is None:
        suffix = "" if target == STDOUT else Path(target).suffix
        format = suffix or "jsonl"
    cls = exporter_class(format)
    if issubclass(cls, JsonExporter):
        return cls(target, overwrite=overwrite, fields=fields, indent=indent)
    return cls(target, overwrite=overwrite, fields=fields)


