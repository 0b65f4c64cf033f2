from __future__ import annotations

import json

import pytest

from crawler import UsageError
from crawler.exporters import make_exporter


async def write(path, items, overwrite=False, fields=None, flush_each=False):
    exporter = make_exporter(path, overwrite=overwrite, fields=fields)
    await exporter.open()
    for item in items:
        await exporter.export(item)
        if flush_each:
            await exporter.flush()
    await exporter.close()


async def test_json_array_valid_after_every_batch_and_appendable(tmp_path):
    path = tmp_path / "items.json"
    exporter = make_exporter(path, overwrite=True)
    await exporter.open()
    assert json.loads(path.read_text()) == []
    for i in range(3):
        await exporter.export({"i": i})
        await exporter.flush()
        assert json.loads(path.read_text()) == [{"i": j} for j in range(i + 1)]
    await exporter.close()
    await write(path, [{"i": 3}])  # -o appends to the same array
    assert json.loads(path.read_text()) == [{"i": j} for j in range(4)]
    await write(path, [{"i": 9}], overwrite=True)
    assert json.loads(path.read_text()) == [{"i": 9}]


async def test_json_append_refuses_a_non_array(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"not": "an array"}')
    with pytest.raises(UsageError, match="-O"):
        await write(path, [{"a": 1}])
    assert path.read_text() == '{"not": "an array"}'


async def test_jsonl_appends(tmp_path):
    path = tmp_path / "x.jsonl"
    await write(path, [{"a": 1}])
    await write(path, [{"a": 2}])
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"a": 1}, {"a": 2}]


async def test_csv_header_from_first_item_or_feed_fields(tmp_path):
    path = tmp_path / "x.csv"
    await write(path, [{"a": 1, "b": "x,y"}, {"b": 2, "c": 3}])
    assert path.read_text() == 'a,b\n1,"x,y"\n,2\n'
    await write(path, [{"a": 5}])  # appending does not repeat the header
    assert path.read_text().count("a,b") == 1
    other = tmp_path / "y.csv"
    await write(other, [{"a": 1, "b": 2}], fields=("b",))
    assert other.read_text() == "b\n2\n"


async def test_unknown_extension_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="unknown format"):
        make_exporter(tmp_path / "x.xml")


async def test_unserialisable_item_is_a_value_error(tmp_path):
    exporter = make_exporter(tmp_path / "x.csv", overwrite=True)
    await exporter.open()
    with pytest.raises(ValueError, match="CSV needs dict-like"):
        await exporter.export(42)
    await exporter.close()
