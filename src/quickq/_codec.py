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


class JsonCodec:
    """Strict JSON: no NaN or infinity, str keys; what goes in comes out equal."""

    def encode(self, payload: Any) -> bytes:
        """As Codec.encode: compact JSON; NaN, infinity, values JSON cannot hold
        (bytes, sets...) and nesting too deep for the encoder raise InvalidJobError."""
        try:
            return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidJobError(f"payload is not JSON-encodable: {exc}") from None
        except RecursionError:
            raise InvalidJobError("payload is nested too deeply to encode") from None

    def decode(self, data: bytes) -> Any:
        """As Codec.decode: parse the JSON that encode wrote."""
        return json.loads(data)
