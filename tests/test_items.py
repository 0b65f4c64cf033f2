"""What an item may be and how it is written (issue 7.10)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from collections import OrderedDict, namedtuple
from types import MappingProxyType

import pytest

from crawler import Request
from crawler.outputs.items import ItemError, is_item, to_record


def loads(item):
    return json.loads(to_record(item).json)


@dataclasses.dataclass
class Book:
    title: str
    price: float
    _secret: str = "x"


@dataclasses.dataclass(slots=True, frozen=True)
class Frozen:
    a: int


class Slotted:
    __slots__ = ("_hidden", "a", "b")

    def __init__(self) -> None:
        self.a, self.b, self._hidden = 1, [2], 3


class Plain:
    def __init__(self) -> None:
        self.a = 1
        self._hidden = 2


Point = namedtuple("Point", "x y")


class Color(enum.Enum):
    RED = "red"


def test_item_shapes_are_written_as_objects():
    assert loads(Book("T", 1.5)) == {"title": "T", "price": 1.5}
    assert loads(Frozen(1)) == {"a": 1}
    assert loads(Slotted()) == {"a": 1, "b": [2]}
    assert loads(Plain()) == {"a": 1}
    assert loads(Point(1, 2)) == {"x": 1, "y": 2}
    assert loads(OrderedDict(a=1)) == {"a": 1}
    assert loads(MappingProxyType({"a": 1})) == {"a": 1}
    assert loads({"nested": [Book("N", 2.0), Point(3, 4)]}) == {
        "nested": [{"title": "N", "price": 2.0}, {"x": 3, "y": 4}]}


def test_attrs_and_pydantic_items():
    attrs = pytest.importorskip("attrs")
    pydantic = pytest.importorskip("pydantic")

    @attrs.define
    class A:
        a: int
        b: str = "x"

    class M(pydantic.BaseModel):
        a: int
        when: datetime.date

    assert loads(A(1)) == {"a": 1, "b": "x"}
    assert loads(M(a=1, when=datetime.date(2024, 1, 2))) == {"a": 1, "when": "2024-01-02"}


def test_values_json_has_no_exact_spelling_for():
    item = {"set": {3, 1, 2}, "bytes": "café".encode(), "nan": float("nan"),
            "inf": float("-inf"), "dec": decimal.Decimal("1.10"), "uuid": uuid.UUID(int=1),
            "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "color": Color.RED, "tuple": (1, 2), "big": 2**70}
    assert loads(item) == {
        "set": [1, 2, 3], "bytes": "café", "nan": None, "inf": None, "dec": "1.10",
        "uuid": "00000000-0000-0000-0000-000000000001", "when": "2024-01-02T03:04:05+00:00",
        "color": "red", "tuple": [1, 2], "big": 2**70}


def test_non_string_keys_become_strings_unless_they_collide():
    assert loads({2: "a", None: "b", True: "c", 1.5: "d"}) == {
        "2": "a", "null": "b", "true": "c", "1.5": "d"}
    with pytest.raises(ItemError, match="two keys become '1'"):
        to_record({1: "a", "1": "b"})


@pytest.mark.parametrize(("item", "message"), [
    ({"b": b"\xff\x00"}, "not UTF-8"),
    ({"o": object()}, "cannot write a value of type object"),
    ({(1, 2): "tuple key"}, "cannot be a JSON key"),
    ({"r": Request("http://h.test/")}, "cannot write a value of type Request"),
])
def test_unwritable_values_reject_the_item(item, message):
    with pytest.raises(ItemError, match=message):
        to_record(item)


def test_deep_nesting_is_rejected():
    deep: list = []
    node = deep
    for _ in range(300):
        node.append([])
        node = node[0]
    with pytest.raises(ItemError, match="nested deeper"):
        to_record({"deep": deep})


@pytest.mark.parametrize("obj", ["text", b"bytes", 1, 1.5, True, [1], (1, 2), {1}, None,
                                 Request("http://h.test/")])
def test_bare_values_are_not_items(obj):
    assert not is_item(obj)
    with pytest.raises(ItemError, match="is not an item"):
        to_record(obj)
