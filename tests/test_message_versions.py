"""Messages evolve: class_version and upcasters bring stored payloads up to date."""

from __future__ import annotations

from typing import Any

import pytest

from coordination import Event, from_json, to_json
from coordination.errors import MalformedMessage


class Shipped(Event, type_name="tests.Shipped"):
    """Version 3: `carrier` was added in 2, `tracking` renamed from `code` in 3."""

    class_version = 3
    order_id: str
    carrier: str
    tracking: str

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "carrier": "unknown"}

    @staticmethod
    def upcast_v2_v3(data: dict[str, Any]) -> dict[str, Any]:
        data["tracking"] = data.pop("code")
        return data


class NoUpcaster(Event, type_name="tests.NoUpcaster"):
    class_version = 2
    n: int


def test_current_payloads_carry_their_version_and_round_trip() -> None:
    message = Shipped(order_id="o1", carrier="dhl", tracking="T1")
    text = to_json(message)
    assert '"version":3' in text
    assert from_json(text, [Shipped]) == message


def test_older_payloads_are_upcast_step_by_step() -> None:
    v1 = '{"type":"tests.Shipped","data":{"order_id":"o1","code":"T1"}}'
    assert from_json(v1, [Shipped]) == Shipped(order_id="o1", carrier="unknown", tracking="T1")
    v2 = '{"type":"tests.Shipped","version":2,"data":{"order_id":"o1","carrier":"ups","code":"T"}}'
    assert from_json(v2, [Shipped]) == Shipped(order_id="o1", carrier="ups", tracking="T")


def test_a_missing_upcaster_names_the_type_and_the_step() -> None:
    with pytest.raises(MalformedMessage, match=r"no upcast_v1_v2"):
        from_json('{"type":"tests.NoUpcaster","data":{"n":1}}', [NoUpcaster])


def test_a_payload_from_newer_code_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="newer than this code"):
        from_json('{"type":"tests.NoUpcaster","version":5,"data":{"n":1}}', [NoUpcaster])


@pytest.mark.parametrize("version", ["2", 0, True, -1])
def test_a_bad_version_is_malformed(version: object) -> None:
    import json

    text = json.dumps({"type": "tests.NoUpcaster", "version": version, "data": {"n": 1}})
    with pytest.raises(MalformedMessage):
        from_json(text, [NoUpcaster])


def test_version_one_payloads_stay_as_they_were() -> None:
    class Plain(Event, type_name="tests.Plain"):
        n: int

    assert to_json(Plain(n=1)) == '{"type":"tests.Plain","data":{"n":1}}'
