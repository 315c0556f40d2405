"""What every job spec shares: strict models (unknown fields are errors), common types, and the
references to stored inputs (files and networks, by id).

A spec never names a path on the server: a file input is the id of a file the user uploaded
(``POST /files``) or of an artifact of one of their jobs (:data:`FileId`); a network is the id of
one of their networks, or ``{"job": "<id>"}``, the network a job makes (:class:`JobOutput`).
Ownership and what the file holds are checked when the job is submitted
(:mod:`lifrnn.store.inputs`). ``lifrnn run`` on one's own machine still takes local paths: it
validates with :data:`LOCAL_FILES` in the context, stores those files, and runs the spec with
their ids.

Every value a spec, a label or a sweep carries must also be one every store can keep
(:func:`unstorable`, :data:`StorableText`): finite numbers (JSON has no NaN), and text without
NUL characters (PostgreSQL's text cannot hold one) or lone surrogates (no UTF-8 for them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from lifrnn.specs.resources import Estimate, NetworkDims

Device = Literal["cpu", "cuda"]
ReferenceKind = Literal["file", "network"]

Seed = Annotated[int, Field(ge=0, lt=2**63)]
"""A random seed: any integer numpy's and torch's generators take, ``0 <= seed < 2**63``."""


def omitted_at(default: object) -> Callable[[object], bool]:
    """``exclude_if`` for a field added after specs were stored: the field is left out of the
    dumped spec while it holds ``default``, so the hash (:func:`lifrnn.specs.spec_sha256`) of
    every spec written before it existed is unchanged."""
    return lambda value: value == default


LOCAL_FILES = "local_files"
"""Validation-context flag: reference fields may hold local paths (``lifrnn run``, the client)."""

_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_id(value: object) -> bool:
    """True for the text of a lifrnn id (a lower-case UUID)."""
    return isinstance(value, str) and bool(_ID.match(value))


def _stored_reference(value: str, info: ValidationInfo) -> str:
    if is_id(value.lower()):
        return value.lower()
    if info.context and info.context.get(LOCAL_FILES):
        return value  # a local path; stored and replaced by its id before the job runs
    shown = value if len(value) <= 80 else value[:77] + "..."
    raise ValueError(
        f"expected an id (e.g. 3f2b8c1e-...), got {shown!r}: specs name stored files and "
        "networks by id, never by path; upload a file with POST /files (`lifrnn upload`, "
        "`client.upload`), or use a network's or an artifact's id"
    )


StoredId = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_stored_reference)]
"""The id of a stored file or network of the user's (a local path in :data:`LOCAL_FILES` mode)."""

FileId = Annotated[
    StoredId,
    Field(
        description="id of a file you uploaded (POST /files) or of an artifact of one of your jobs"
    ),
]
"""A file input: an uploaded file's or an artifact's id."""


MAX_DEPTH = 32
"""How deeply JSON values may nest (deeper than any spec does)."""


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as text, or None: a NUL character, or a lone surrogate
    (a half of a UTF-16 pair, which has no UTF-8)."""
    if "\x00" in text:
        return "text may not contain NUL characters (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        shown = text[error.start].encode("utf-8", "backslashreplace").decode()
        return f"a lone surrogate ({shown}) is not text: send it paired, or as UTF-8"
    return None


def shown_key(key: str) -> str:
    """``key`` fit for a message: NUL and lone surrogates escaped."""
    return key.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()


def unstorable(
    value: Any, where: str = "", limit: int = 5, max_depth: int | None = MAX_DEPTH
) -> list[str]:
    """``where.path: reason`` for each part of the JSON value ``value`` that a store cannot keep
    (at most ``limit``): a non-finite number, a text (a key too) with a NUL or a lone surrogate,
    or nesting deeper than ``max_depth`` (None: any depth). Lists are walked by index:
    ``grid.seed[1]``."""
    problems: list[str] = []
    pending: list[tuple[str, Any, int]] = [(where, value, 0)]  # a stack: no recursion limit
    while pending and len(problems) < limit:
        path, item, depth = pending.pop()
        named = path or "body"
        if max_depth is not None and depth > max_depth:
            problems.append(f"{named}: nested more than {max_depth} levels deep")
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(f"{named}: numbers must be finite (JSON has no NaN or Infinity)")
        elif isinstance(item, str):
            reason = text_problem(item)
            if reason is not None:
                problems.append(f"{named}: {reason}")
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                key_text = str(key)
                child_path = f"{path}.{shown_key(key_text)}" if path else shown_key(key_text)
                reason = text_problem(key_text)
                if reason is not None:
                    problems.append(f"{child_path}: the key: {reason}")
                else:
                    pending.append((child_path, child, depth + 1))
        elif isinstance(item, list | tuple):
            pending += [(f"{path}[{i}]", child, depth + 1) for i, child in enumerate(item)][::-1]
    return problems[:limit]


def _storable_text(value: str) -> str:
    reason = text_problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


StorableText = Annotated[str, AfterValidator(_storable_text)]
"""Text every store can keep: no NUL character, no lone surrogate (a 422 naming the field)."""


class StrictModel(BaseModel):
    """Unknown fields are errors, not silently ignored (a typo must not change a computation),
    and every float must be finite: NaN and infinities are refused, naming the field."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class JobOutput(StrictModel):
    """``{"job": "<id>"}``: the network that job makes, once it has succeeded.

    The job may still be queued or running: the job naming it waits (status ``waiting``).
    """

    job: Annotated[
        str,
        Field(max_length=100, description="id of one of your soc/fit/retrain/fit_data jobs"),
        AfterValidator(lambda value: _job_id(value)),
    ]


def _job_id(value: str) -> str:
    if not is_id(value.lower()):
        raise ValueError(f"expected a job id, got {value!r}")
    return value.lower()


@dataclass(frozen=True)
class InputFacts:
    """What the store knows of a referenced input, for a spec's own checks at submit.

    Attributes:
        name: how to name it in a message (``file 'W.npy'``, ``network 3f2b...``).
        header: tensor names, dtypes and shapes (``{"tensors": ..., "metadata": ...}``), when
            the file is stored already.
        network_kind: kind of the job that makes the network (``soc``, ``fit``, ``retrain``), or
            None for a file.
        n: number of units of the network, when known.
        fitted: whether the network carries initial states and a readout (None: unknown).
        dims: the network's sizes (units, fitted movements, time samples), when known.
    """

    name: str
    header: dict[str, Any] | None = None
    network_kind: str | None = None
    n: int | None = None
    fitted: bool | None = None
    dims: NetworkDims | None = None


class SpecBase(StrictModel):
    """Common base of every job spec; ``kind`` names the job."""

    kind: str

    references: ClassVar[dict[str, ReferenceKind]] = {}
    """Dotted field paths that name stored inputs, and what each must be."""
    numerical_hint: ClassVar[str] = "check the spec's parameters"
    """What to change when a numerical library fails on this spec (a singular matrix, ...)."""

    def reference_values(self) -> dict[str, Any]:
        """Each reference field that is set: dotted path -> its value (an id or a JobOutput)."""
        found = {}
        for path in self.references:
            value: Any = self
            for part in path.split("."):
                value = getattr(value, part, None) if isinstance(value, BaseModel) else None
            if isinstance(value, str | JobOutput):
                found[path] = value
        return found

    def estimate(self, inputs: dict[str, InputFacts]) -> Estimate:
        """Peak memory, artifact bytes and work of this job (:mod:`lifrnn.specs.resources`),
        from the spec and what the store knows of its inputs."""
        raise NotImplementedError(f"{type(self).__name__} has no resource estimate")

    def check_inputs(self, inputs: dict[str, InputFacts]) -> None:
        """Raise ``ValueError("field: reason")`` when an input cannot serve this spec."""


DEFAULT_DIMS = NetworkDims(n=200, movements=2, steps=601, dt=1e-3, duration=0.6)
"""Sizes assumed for what the store cannot tell (the fit spec's defaults)."""


def network_dims(facts: InputFacts | None) -> NetworkDims:
    """The sizes of a referenced network, the defaults filling what is unknown."""
    dims = facts.dims if facts is not None else None
    if dims is None:
        dims = NetworkDims(n=(facts.n if facts is not None else None) or DEFAULT_DIMS.n)
    return NetworkDims(
        n=dims.n,
        movements=dims.movements or DEFAULT_DIMS.movements,
        steps=dims.steps or DEFAULT_DIMS.steps,
        dt=dims.dt or DEFAULT_DIMS.dt,
        duration=dims.duration or DEFAULT_DIMS.duration,
    )
