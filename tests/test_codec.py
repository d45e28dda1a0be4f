"""The JSON codec: what goes in comes out equal, and bytes decode as ``json.loads`` reads them."""

from __future__ import annotations

import json

import pytest

from quickq import InvalidJobError
from quickq._codec import JsonCodec

codec = JsonCodec()


@pytest.mark.parametrize("payload", [{"a": [1, 2.5, "é\U0001f600", None, True]}, "x", 0, []])
def test_round_trip(payload: object) -> None:
    data = codec.encode(payload)
    assert data == json.dumps(payload, separators=(",", ":")).encode()
    assert codec.decode(data) == payload


@pytest.mark.parametrize(
    "data", ['{"a": "é"}'.encode("utf-16"), b"\xef\xbb\xbf[1]", '["é"]'.encode()]
)
def test_decodes_what_json_loads_reads(data: bytes) -> None:
    assert codec.decode(data) == json.loads(data)


def test_errors_are_json_loads_errors() -> None:
    with pytest.raises(json.JSONDecodeError):
        codec.decode(b"{bad")
    with pytest.raises(InvalidJobError, match="not JSON-encodable"):
        codec.encode(float("nan"))
