"""Python client of the lifrnn job service (httpx).

    >>> from lifrnn.client import Client, fit, prepare, soc
    >>> client = Client()                        # LIFRNN_URL / LIFRNN_TOKEN, else the local token
    >>> network = client.submit(soc(method="kao2021", n=40))
    >>> reaches = client.submit(fit(network=network, duration=0.2, dt=0.002))  # waits server-side
    >>> trial = client.submit(prepare(network=reaches)).wait()
    >>> reaches.wait().metrics["r2_min"], reaches.artifacts["network.safetensors"].size
    >>> tensors = reaches.network()              # W, h, x_sp, C, x_star as torch tensors

Specs name stored inputs by id. A :class:`Job` given as the ``network`` of a spec stands for the
network it makes (``{"job": id}``): the new job waits on the server, nothing blocks here. Local
files and arrays named in a spec are uploaded by :meth:`Client.submit` (or by hand with
:meth:`Client.upload`). Errors are specific exceptions carrying the server's message, all
:class:`ClientError`:
:class:`Unauthorized` (401), :class:`NotFound` (404), :class:`InvalidSpec` (422, with the field
messages in ``.fields``), :class:`QuotaExceeded` (429), all :class:`LifrnnHTTPError`; and
:class:`JobFailed` / :class:`JobCancelled` (with the server's ``.reason``) from :meth:`Job.wait`.
Each is also importable by its long name (``NotFoundError``, ...).

The package, by concept: :mod:`~lifrnn.client.connection` (the :class:`Client`: requests,
retries, every call), :mod:`~lifrnn.client.errors`, :mod:`~lifrnn.client.records` (jobs,
networks, files, artifacts), :mod:`~lifrnn.client.pages` (lists and search results),
:mod:`~lifrnn.client.sweeps` and :mod:`~lifrnn.client.progress` (bars, streamed events,
curves). It may import httpx, pydantic, :mod:`lifrnn.builders`, :mod:`lifrnn.specs`,
:mod:`lifrnn.settings`, :mod:`lifrnn.durations` and :mod:`lifrnn.networks` (a saved network's
metadata); never the store, ``api/`` or ``worker/``.
"""

from lifrnn.builders import fit, fit_data, prepare, retrain, simulate_spiking, soc
from lifrnn.client.connection import DEFAULT_URL, Client
from lifrnn.client.errors import (
    ClientError,
    Conflict,
    ConflictError,
    ConnectionFailedError,
    Forbidden,
    ForbiddenError,
    InvalidSpec,
    InvalidSpecError,
    JobCancelled,
    JobCancelledError,
    JobFailed,
    JobFailedError,
    LifrnnHTTPError,
    NotFound,
    NotFoundError,
    QuotaExceeded,
    QuotaExceededError,
    Unauthorized,
    UnauthorizedError,
    WaitTimeoutError,
    parse_field_messages,
)
from lifrnn.client.pages import FileList, JobList, NetworkList, SearchResult
from lifrnn.client.progress import Curve, StreamEvent
from lifrnn.client.records import (
    FINAL_STATUSES,
    JOB_STATUSES,
    NETWORK_ARTIFACT,
    Artifact,
    File,
    Job,
    Network,
    NetworkTensors,
    load_network_file,
)
from lifrnn.client.sweeps import Sweep, SweepList

__all__ = [
    "DEFAULT_URL",
    "FINAL_STATUSES",
    "JOB_STATUSES",
    "NETWORK_ARTIFACT",
    "Artifact",
    "Client",
    "ClientError",
    "Conflict",
    "ConflictError",
    "ConnectionFailedError",
    "Curve",
    "File",
    "FileList",
    "Forbidden",
    "ForbiddenError",
    "InvalidSpec",
    "InvalidSpecError",
    "Job",
    "JobCancelled",
    "JobCancelledError",
    "JobFailed",
    "JobFailedError",
    "JobList",
    "LifrnnHTTPError",
    "Network",
    "NetworkList",
    "NetworkTensors",
    "NotFound",
    "NotFoundError",
    "QuotaExceeded",
    "QuotaExceededError",
    "SearchResult",
    "StreamEvent",
    "Sweep",
    "SweepList",
    "Unauthorized",
    "UnauthorizedError",
    "WaitTimeoutError",
    "fit",
    "fit_data",
    "load_network_file",
    "parse_field_messages",
    "prepare",
    "retrain",
    "simulate_spiking",
    "soc",
]
