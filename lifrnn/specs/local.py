"""Local paths in a spec's reference fields, replaced by the ids of the files they name.

On one's own machine a spec may name local files (``"initial_weights": "W.npy"``,
``"network": "runs/fit/network.safetensors"``). Before it is recorded or sent, each such path
is handed to a ``store`` function (the local store's for ``lifrnn run``, an upload for
``lifrnn submit`` and the client) that returns the id to put in its place, so the spec that is
recorded and run names ids only, and is the same wherever it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lifrnn.specs.base import ReferenceKind, SpecBase, is_id

StoreFile = Callable[[str, ReferenceKind, Path], str]
"""``store(field, kind, path) -> id``: keep the local file ``path`` and return its id."""


class LocalFileError(ValueError):
    """A reference field names a local file that cannot be read; the message names the field."""


def reference_fields(kind: str) -> dict[str, ReferenceKind]:
    """The reference fields of specs of ``kind`` (dotted path -> file or network)."""
    from lifrnn.specs import SPEC_MODELS

    model = SPEC_MODELS.get(kind)
    return dict(model.references) if model is not None else {}


def local_paths(data: dict[str, Any]) -> dict[str, tuple[ReferenceKind, Path]]:
    """The reference fields of spec ``data`` that hold local paths rather than ids."""
    found: dict[str, tuple[ReferenceKind, Path]] = {}
    for field, kind in reference_fields(str(data.get("kind", ""))).items():
        value: Any = data
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and not is_id(value.lower()):
            found[field] = (kind, Path(value).expanduser())
        elif isinstance(value, Path):
            found[field] = (kind, value.expanduser())
    return found


def replace_local_paths(data: dict[str, Any] | SpecBase, store: StoreFile) -> dict[str, Any]:
    """A copy of spec ``data`` whose local paths are replaced by ``store``'s ids.

    Paths are relative to the current folder. Raises :class:`LocalFileError` for a path that
    is not a readable file.
    """
    document = data.model_dump(mode="json") if isinstance(data, SpecBase) else _copy(data)
    for field, (kind, path) in local_paths(document).items():
        if not path.is_file():
            raise LocalFileError(f"{field}: no such file: {path}")
        identifier = store(field, kind, path)
        target = document
        *parents, last = field.split(".")
        for part in parents:
            target = target[part]
        target[last] = identifier
    return document


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
