"""Schemathesis hooks (``SCHEMATHESIS_HOOKS``) for test_schemathesis.py: what no store can keep,
put into the requests schemathesis generates.

Schemathesis' own alphabet has NUL characters but no lone surrogates (they cannot be encoded
for the wire as text), and its JSON goes out through ``requests``, which refuses NaN. These hooks
spoil about half of the generated values: a NUL or a lone surrogate put into strings (JSON
escapes a surrogate as ``\\ud800``), NaN or an infinity for numbers (JSON bodies are then sent as
the bytes Python's ``json`` writes, ``NaN`` tokens and all). Query and path parameters and
multipart forms get NUL characters only: a URL or a form part cannot carry a lone surrogate.
"""

from __future__ import annotations

import json
import math
from typing import Any

import schemathesis
from hypothesis import strategies as st

TEXT_SPOILERS = ("\x00", "\ud800", "\udfff")
WIRE_SAFE_SPOILERS = ("\x00",)
NON_FINITE = (math.nan, math.inf, -math.inf)


def _spoil(draw: st.DrawFn, value: Any, spoilers: tuple[str, ...], numbers: bool) -> Any:
    """``value`` with some of its strings and numbers spoiled, each with chance 1/3 (and the
    keys of nested objects: those of ``value`` itself may be parameter names)."""
    if isinstance(value, str):
        if draw(st.integers(0, 2)) == 0:
            at = draw(st.integers(0, len(value)))
            return value[:at] + draw(st.sampled_from(spoilers)) + value[at:]
        return value
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return draw(st.sampled_from(NON_FINITE)) if draw(st.integers(0, 2)) == 0 else value
    if isinstance(value, dict):
        return {key: _spoil_nested(draw, item, spoilers, numbers) for key, item in value.items()}
    if isinstance(value, list):
        return [_spoil_nested(draw, item, spoilers, numbers) for item in value]
    return value


def _spoil_nested(draw: st.DrawFn, value: Any, spoilers: tuple[str, ...], numbers: bool) -> Any:
    if isinstance(value, dict):
        value = {_spoil(draw, key, spoilers, False): item for key, item in value.items()}
    return _spoil(draw, value, spoilers, numbers)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(item) for item in value)
    return False


@st.composite
def _maybe_spoiled(draw: st.DrawFn, value: Any, json_body: bool) -> Any:
    if not draw(st.booleans()):
        return value
    spoilers = TEXT_SPOILERS if json_body else WIRE_SAFE_SPOILERS
    spoiled = _spoil(draw, value, spoilers, numbers=json_body)
    if json_body and _has_non_finite(spoiled):
        return json.dumps(spoiled).encode()  # requests would refuse NaN
    return spoiled


def _is_json_body(context: schemathesis.HookContext) -> bool:
    operation = context.operation
    media_types = operation.get_request_payload_content_types() if operation else []
    return bool(media_types) and all("json" in media for media in media_types)


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """JSON bodies: NUL, lone surrogates, NaN and infinities; forms: NUL."""
    return _maybe_spoiled(body, _is_json_body(context))


@schemathesis.hook
def flatmap_query(context: schemathesis.HookContext, query: Any) -> st.SearchStrategy[Any]:
    """Query parameters: NUL characters."""
    return _maybe_spoiled(query, False)


@schemathesis.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: Any
) -> st.SearchStrategy[Any]:
    """Path parameters: NUL characters."""
    return _maybe_spoiled(path_parameters, False)
