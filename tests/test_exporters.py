from __future__ import annotations

import csv
import json
import os
from xml.etree import ElementTree

import pytest

from crawler.exceptions import OutputError
from crawler.outputs.files import Exporter
from crawler.outputs.formats import make_exporter
from crawler.outputs.items import to_record


async def start(exporter: Exporter) -> Exporter:
    exporter.check()
    await exporter.open()
    await exporter.begin()
    return exporter


async def write(path, items, overwrite=False, fields=None, flush_each=False) -> Exporter:
    exporter = await start(make_exporter(path, overwrite=overwrite, fields=fields))
    for item in items:
        await exporter.write(to_record(item))
        if flush_each:
            await exporter.flush()
    await exporter.close()
    return exporter


async def test_json_array_valid_after_every_batch_and_appendable(tmp_path):
    path = tmp_path / "items.json"
    exporter = await start(make_exporter(path, overwrite=True))
    assert json.loads(path.read_text()) == []
    for i in range(3):
        await exporter.write(to_record({"i": i}))
        await exporter.flush()
        assert json.loads(path.read_text()) == [{"i": j} for j in range(i + 1)]
    await exporter.close()
    await write(path, [{"i": 3}])  # -o appends to the same array
    assert json.loads(path.read_text()) == [{"i": j} for j in range(4)]
    await write(path, [{"i": 9}], overwrite=True)
    assert json.loads(path.read_text()) == [{"i": 9}]


async def test_json_append_to_arrays_with_odd_whitespace(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("  [ {\"a\": 1} ]   \n\n")
    await write(path, [{"a": 2}])
    assert json.loads(path.read_text()) == [{"a": 1}, {"a": 2}]
    path.write_text("[]")
    await write(path, [{"a": 3}])
    assert json.loads(path.read_text()) == [{"a": 3}]


@pytest.mark.parametrize("content", ['{"not": "an array"}', "garbage]", "[1, 2", '["a"] x]'])
async def test_json_append_refuses_what_is_not_an_array(tmp_path, content):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(OutputError, match="not a JSON array; use -O"):
        make_exporter(path).check()
    assert path.read_text() == content


def _xml_items(path) -> list[dict]:
    """The items of an XML output (parsed whole: it must be a valid document)."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == "items"
    return [{field.get("name", field.tag): [v.text for v in field] if len(field) else field.text
             for field in item} for item in root]


async def test_xml_valid_after_every_batch_appendable_and_scrapy_shaped(tmp_path):
    path = tmp_path / "items.xml"
    exporter = await start(make_exporter(path, overwrite=True))
    assert _xml_items(path) == []
    for i in range(3):
        await exporter.write(to_record({"i": i, "tags": ["a", "b"], "text": "x<&>\x01",
                                        "bad key": None}))
        await exporter.flush()
        assert [item["i"] for item in _xml_items(path)] == [str(j) for j in range(i + 1)]
    await exporter.close()
    first = _xml_items(path)[0]
    assert first == {"i": "0", "tags": ["a", "b"], "text": "x<&>\ufffd", "bad key": None}
    assert path.read_text().startswith('<?xml version="1.0" encoding="utf-8"?>\n<items>\n'
                                       "<item><i>0</i><tags><value>a</value>")
    await write(path, [{"i": 3}])  # -o appends inside the same root element
    assert [item["i"] for item in _xml_items(path)] == ["0", "1", "2", "3"]
    path.write_text('<?xml version="1.0"?>\n<items>\n</items>  \n')
    await write(path, [{"i": 4}])
    assert _xml_items(path) == [{"i": "4"}]


@pytest.mark.parametrize("content", ["<items><item></items>", "<other></other>", "garbage",
                                     "<items><item/></items> x"])
async def test_xml_append_refuses_what_is_not_an_items_document(tmp_path, content):
    path = tmp_path / "x.xml"
    path.write_text(content)
    with pytest.raises(OutputError, match="not an <items> document"):
        make_exporter(path).check()


async def test_jsonl_appends_and_adds_a_missing_final_newline(tmp_path):
    path = tmp_path / "x.jsonl"
    await write(path, [{"a": 1}])
    await write(path, [{"a": 2}])
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}')  # no trailing newline: the next record must not be glued on
    await write(path, [{"a": 2}])
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"a": 1}, {"a": 2}]


async def test_csv_header_from_first_item_or_feed_fields(tmp_path):
    path = tmp_path / "x.csv"
    exporter = await write(path, [{"a": 1, "b": "x,y"}, {"b": 2, "c": 3}])
    assert path.read_text() == 'a,b\n1,"x,y"\n,2\n'
    assert exporter.fields_dropped == {"c": 1}  # counted, and warned about once
    await write(path, [{"a": 5}])  # appending does not repeat the header
    assert path.read_text().count("a,b") == 1
    other = tmp_path / "y.csv"
    await write(other, [{"a": 1, "b": 2}], fields=("b",))
    assert other.read_text() == "b\n2\n"


async def test_csv_append_maps_by_the_existing_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("b,a\n1,2")  # other column order, and no final newline
    exporter = await write(path, [{"a": "A", "b": "B", "z": "Z"}])
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert rows == [{"b": "1", "a": "2"}, {"b": "B", "a": "A"}]
    assert exporter.fields_dropped == {"z": 1}


async def test_csv_values(tmp_path):
    path = tmp_path / "x.csv"
    await write(path, [{"n": None, "f": float("nan"), "i": 2**70, "l": [1, {"k": "v"}],
                        "t": True, "s": {2, 1}}])
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert rows == [{"n": "", "f": "", "i": str(2**70), "l": '[1,{"k":"v"}]', "t": "True",
                     "s": "[1,2]"}]


async def test_unknown_format_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="unknown output format"):
        make_exporter(tmp_path / "x.yaml")


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "xml"])
async def test_a_failed_write_cuts_the_file_back_to_its_last_record(tmp_path, fmt,
                                                                    monkeypatch):
    path = tmp_path / f"x.{fmt}"
    exporter = await start(make_exporter(path, overwrite=True))
    failures: list[Exporter] = []
    exporter.on_error = failures.append
    await exporter.write(to_record({"a": 1}))
    await exporter.flush()
    good = path.read_bytes()
    real_write = os.pwrite
    capacity = len(good) + 10  # a disk that fills up 10 bytes past the first record

    def full_disk(fd, data, offset):
        if fd != exporter._fd:
            return real_write(fd, data, offset)
        room = capacity - offset
        if len(data) <= room:
            return real_write(fd, data, offset)
        if room > 0:
            return real_write(fd, data[:room], offset)  # a short write, then ENOSPC
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full_disk)
    await exporter.write(to_record({"a": "x" * 100}))
    await exporter.flush()  # never raises into the caller
    assert failures == [exporter]
    assert exporter.error == "[Errno 28] No space left on device"
    assert path.read_bytes() == good  # no torn record; a .json array still closed
    await exporter.write(to_record({"a": 3}))  # a failed output takes no more records
    await exporter.close()
    assert path.read_bytes() == good
    assert exporter.count == 1


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".xml"])
@pytest.mark.parametrize("before", [0, 2])
async def test_a_rewind_leaves_the_file_as_it_stood_at_the_mark(tmp_path, suffix, before):
    """What a fleet worker does with the items of pages whose leases it lost while it
    wrote them: back to the mark, then other records, and the file is as if the taken-back
    ones were never written (a CSV header once, a JSON array and XML document whole)."""
    path = tmp_path / f"out{suffix}"
    exporter = await start(make_exporter(path, overwrite=True))
    items = [{"n": n, "text": f"item {n}"} for n in range(6)]
    for item in items[:before]:
        await exporter.write(to_record(item))
    await exporter.flush()
    mark = exporter.mark()
    assert mark is not None
    for item in items[before:before + 2]:  # written, then taken back
        await exporter.write(to_record(item))
    await exporter.flush()
    await exporter.rewind(mark)
    for item in items[before + 2:]:
        await exporter.write(to_record(item))
    await exporter.close()
    kept = items[:before] + items[before + 2:]
    written = make_exporter(tmp_path / f"again{suffix}", overwrite=True)
    await start(written)
    for item in kept:
        await written.write(to_record(item))
    await written.close()
    assert path.read_bytes() == (tmp_path / f"again{suffix}").read_bytes()
    assert exporter.count == len(kept)


async def test_a_stream_cannot_be_rewound():
    exporter = await start(make_exporter("-"))
    try:
        assert exporter.mark() is None  # what reached a pipe cannot be taken back
    finally:
        await exporter.close()
