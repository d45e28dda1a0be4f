"""Payload codecs. JSON by default; never pickle (payloads cross trust boundaries)."""

from __future__ import annotations

import json
from typing import Any, Protocol

from ._exceptions import InvalidJobError


class Codec(Protocol):
    """Turns payloads into bytes and back. Must be safe on untrusted input."""

    def encode(self, payload: Any) -> bytes:
        """Encode *payload*, raising InvalidJobError when it cannot be encoded."""
        ...

    def decode(self, data: bytes) -> Any:
        """Decode bytes written by ``encode``."""
        ...


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""What ``json.dumps`` with these options builds anew on every call."""
_DECODE = json.JSONDecoder().decode


class JsonCodec:
    """Strict JSON: no NaN or infinity, str keys; what goes in comes out equal."""

    def encode(self, payload: Any) -> bytes:
        """As Codec.encode: compact JSON; NaN, infinity, values JSON cannot hold
        (bytes, sets...) and nesting too deep for the encoder raise InvalidJobError."""
        try:
            return _ENCODER.encode(payload).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidJobError(f"payload is not JSON-encodable: {exc}") from None
        except RecursionError:
            raise InvalidJobError("payload is nested too deeply to encode") from None

    def decode(self, data: bytes) -> Any:
        """As Codec.decode: parse the JSON that encode wrote (UTF-8, as
        ``encode`` writes it, parsed directly; anything else as ``json.loads``
        reads bytes, which also raises its errors)."""
        try:
            return _DECODE(data.decode())
        except ValueError:  # not UTF-8, a byte-order mark, or not JSON at all
            return json.loads(data)
