"""Pages of listed records (jobs, networks, files) and the lazily paged result of a search,
each with its rows as plain dicts and as a pandas DataFrame."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Self

from lifrnn.client.records import File, Job, Network, _Record

if TYPE_CHECKING:
    import pandas

    from lifrnn.client.connection import Client


def _pandas() -> Any:
    """The pandas module, or an ImportError saying how to install it."""
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "to_dataframe needs pandas: pip install 'lifrnn[pandas]' (or pandas)"
        ) from None
    return pandas


class _Page(list[Any]):
    """A page of a listing: a list, plus ``total`` (all matches; None when asked with
    ``count=False``), ``has_more`` (another page follows) and :meth:`to_dataframe`."""

    total: int | None = None
    has_more: bool = False
    columns: tuple[str, ...] = ()
    record: ClassVar[type[_Record]] = _Record

    @classmethod
    def _read(cls, client: Client, data: dict[str, Any]) -> Self:
        """The page of a listing's JSON: a :attr:`record` per item, with the listing's ``total``
        (None when not counted) and ``has_more``."""
        page = cls(cls.record(client, item) for item in data["items"])
        total = data.get("total")
        page.total = None if total is None else int(total)
        page.has_more = bool(data.get("has_more", False))
        return page

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per item: the listing's columns, then each scalar metric."""
        rows = []
        for item in self:
            data = item.data
            row = {column: data.get(column) for column in self.columns}
            for name, value in (data.get("metrics") or {}).items():
                if isinstance(value, int | float | str | bool) or value is None:
                    row.setdefault(name, value)
            rows.append(row)
        return rows

    def to_dataframe(self) -> pandas.DataFrame:
        """The page as a pandas DataFrame (``pip install lifrnn[pandas]``), indexed by id."""
        pd = _pandas()
        frame = pd.DataFrame(self.rows())
        for column in self.columns:
            if column.endswith("_at") and column in frame.columns:
                frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame.set_index("id") if "id" in frame.columns else frame


class SearchResult:
    """The jobs matching a search (:meth:`Client.search`); iterating pages through all of them
    lazily (``page_size`` per request), ``total`` counts them, :meth:`to_dataframe` makes one
    table of them."""

    def __init__(self, client: Client, query: dict[str, Any], page_size: int = 200) -> None:
        self._client = client
        self._query = query
        self._page_size = page_size
        self._first: dict[str, Any] | None = None

    def _page(self, offset: int) -> dict[str, Any]:
        if offset == 0 and self._first is not None:
            return self._first
        page: dict[str, Any] = self._client._get_json(
            "/jobs",
            **self._query,
            limit=self._page_size,
            offset=offset,
            count=offset == 0 or None,  # the first page counts every match, once
        )
        if offset == 0:
            self._first = page
        return page

    @property
    def total(self) -> int:
        """How many jobs match (when the first page was read)."""
        return int(self._page(0)["total"])

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[Job]:
        seen: set[str] = set()
        offset = 0
        while True:
            items = self._page(offset)["items"]
            for item in items:
                if item["id"] not in seen:  # a job submitted meanwhile shifts the pages
                    seen.add(item["id"])
                    yield Job(self._client, item)
            if len(items) < self._page_size:
                return
            offset += len(items)

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per job: ``id, name, kind, status, created, seconds`` (its run's wall
        time), then ``params.*``, ``metrics.*`` (flattened) and ``tags.*``."""
        rows = []
        for job in self:
            started, finished = job.started_at, job.finished_at
            row: dict[str, Any] = {
                "id": job.id,
                "name": job.name,
                "kind": job.kind,
                "status": job.status,
                "created": job.data.get("queued_at"),
                "seconds": (finished - started).total_seconds() if started and finished else None,
            }
            row.update({f"params.{key}": value for key, value in job.params.items()})
            row.update({f"metrics.{key}": value for key, value in job.flat_metrics.items()})
            row.update({f"tags.{key}": value for key, value in job.tags.items()})
            rows.append(row)
        return rows

    def to_dataframe(self) -> pandas.DataFrame:
        """Every match as a pandas DataFrame (``pip install lifrnn[pandas]``), indexed by id."""
        pd = _pandas()
        base = ["id", "name", "kind", "status", "created", "seconds"]
        frame = pd.DataFrame(self.rows())
        if frame.empty:
            frame = pd.DataFrame(columns=base)
        frame["created"] = pd.to_datetime(frame["created"], utc=True, format="ISO8601")
        return frame.set_index("id")

    def __repr__(self) -> str:
        return f"SearchResult({self._query!r})"


class JobList(_Page):
    """Jobs, newest first; ``total`` counts every match of the filters."""

    columns = ("id", "kind", "status", "progress", "queued_at", "finished_at", "error")
    record = Job


class NetworkList(_Page):
    """Networks, newest first; ``total`` counts every match of the filters."""

    columns = ("id", "kind", "n", "method", "job_id", "parent_network_id", "created_at")
    record = Network


class FileList(_Page):
    """Uploaded files, newest first; ``total`` counts them, ``used_bytes`` is your usage."""

    columns = ("id", "name", "size", "format", "shape", "sha256", "created_at")
    record = File
    used_bytes: int = 0

    @classmethod
    def _read(cls, client: Client, data: dict[str, Any]) -> Self:
        page = super()._read(client, data)
        page.used_bytes = int(data["used_bytes"])
        return page
