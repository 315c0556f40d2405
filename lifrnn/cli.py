"""The ``lifrnn`` command line (typer).

``lifrnn run SPEC.json --out DIR [--json]`` runs one job in-process and writes its artifacts into
DIR; the job is also recorded in the local store (``LIFRNN_HOME``), unless ``--no-store``. Its
spec may name local files (``initial_weights``, ``network``, ``movements.targets_file``): they
are kept in the local store and the recorded spec names their ids. With ``--json`` the last line
on stdout is the job result as one JSON object; otherwise a progress bar (on a terminal) and a
readable summary. Exit status: 0 succeeded, 1 failed or cancelled, 2 invalid spec.

``lifrnn serve`` starts the job service (REST API and in-process workers); ``lifrnn users create
NAME [--admin]`` creates a user and prints its API token once. ``lifrnn users token NAME`` issues
another token, ``lifrnn users revoke NAME`` deletes all of a user's tokens and dashboard sessions;
tokens may expire (``--expires-in 90d``, ``12h``, ``30m``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast, get_args

import typer
from rich.console import Console

from lifrnn import __version__
from lifrnn.cli_client import register as register_service_commands

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lifrnn.results import JobResult
    from lifrnn.settings import Settings

# Commands import what they use (the spec models, settings, the store, torch) when they run, so
# that ``lifrnn --help`` and ``--version`` start in a fraction of a second
# (tests/unit/test_cli_imports.py).

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="lifrnn",
    help="Recurrent networks of motor cortex: build, fit and query them.",
    no_args_is_help=True,
    add_completion=False,
)
users_app = typer.Typer(help="Users of the job service and their API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
db_app = typer.Typer(
    help="The store's database schema, and its rows checked against the object store.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
register_service_commands(app)
stderr = Console(stderr=True)


QUIET_LIBRARIES = ("alembic", "httpx", "botocore", "boto3", "urllib3", "matplotlib")
"""Libraries whose INFO lines (migrations' "setup plugin", one per HTTP request) are noise at
the default level; ``lifrnn -v`` shows them."""


def _configure_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_path=False)],
        force=True,
    )
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="print the version and exit", callback=_print_version),
    ] = False,
) -> None:
    """lifrnn command line."""
    _configure_logging(verbose)


@app.command()
def version() -> None:
    """Print the lifrnn version."""
    typer.echo(__version__)


def _emit(result: JobResult, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(result.model_dump_json() + "\n")
        return
    from rich.table import Table

    console = Console()
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}[result.status]
    console.print(f"[bold]{result.kind}[/] job [{colour}]{result.status}[/]")
    if result.error:
        console.print(f"[red]error:[/] {result.error}")
    if result.metrics:
        table = Table("metric", "value", title="metrics")
        for name, value in result.metrics.items():
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            table.add_row(name, text)
        console.print(table)
    for name, path in result.artifacts.items():
        console.print(f"  {name}: {path}")


@app.command()
def run(
    spec_file: Annotated[Path, typer.Argument(help="job spec (JSON)", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the artifacts")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print the result as one JSON line on stdout")
    ] = False,
    record: Annotated[
        bool, typer.Option("--store/--no-store", help="record the job in the local store")
    ] = True,
) -> None:
    """Run one job in-process, write its artifacts into OUT and record it in the local store."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lifrnn.specs import describe_validation_error, parse_spec

    try:
        spec = parse_spec(spec_file.read_text(), local_files=True)
    except (ValidationError, ValueError, ArithmeticError) as error:
        reason = (
            f"invalid spec: {describe_validation_error(error)}"
            if isinstance(error, ValidationError)
            else f"invalid spec: {type(error).__name__}: {error}"
        )
        kind = None
        with contextlib.suppress(ValueError, AttributeError):
            kind = json.loads(spec_file.read_text()).get("kind")
        _emit_invalid(kind, reason, as_json)
        raise typer.Exit(2) from None
    # after the spec is read: a bad one is refused in a second, without loading torch
    from lifrnn.local_run import LocalSpecError, run_locally

    show_bar = not as_json and stderr.is_terminal
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
        console=stderr,
        disable=not show_bar,
    ) as progress:
        task = progress.add_task(str(spec.kind), total=1.0, message="")  # type: ignore[attr-defined]

        def on_progress(fraction: float, message: str) -> None:
            progress.update(task, completed=fraction, message=message)

        try:
            result = run_locally(spec, out, on_progress, record=record)
        except LocalSpecError as error:
            progress.stop()
            _emit_invalid(spec.kind, f"invalid spec: {error}", as_json)
            raise typer.Exit(2) from None
    _emit(result, as_json)
    if result.status != "succeeded":
        raise typer.Exit(1)


def _emit_invalid(kind: str | None, reason: str, as_json: bool) -> None:
    if as_json:
        from lifrnn.results import JobResult

        result = JobResult(kind=kind or "unknown", status="failed", error=reason)
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        stderr.print(f"[red]{reason}[/]")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (LIFRNN_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (LIFRNN_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="in-process worker threads (LIFRNN_WORKERS)")
    ] = None,
    api_workers: Annotated[
        int | None,
        typer.Option(
            help="HTTP server processes (LIFRNN_API_WORKERS); with more than one, the jobs run "
            "in this process and the others only serve requests",
        ),
    ] = None,
) -> None:
    """Start the job service: REST API (docs at /docs) and in-process workers."""
    from lifrnn.serving import serve as run_server
    from lifrnn.settings import Settings

    # a server's log is read from files: plain lines with times, no terminal layout
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    overrides = {
        name: value
        for name, value in {
            "host": host,
            "port": port,
            "workers": workers,
            "api_workers": api_workers,
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logger.info(
        "serving on http://%s:%d (store %s, %d workers); the dashboard: http://%s:%d/ui",
        settings.host,
        settings.port,
        settings.database_url,
        settings.workers,
        "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host,
        settings.port,
    )
    run_server(settings)


@app.command("worker")
def run_worker(
    queues: Annotated[str, typer.Option(help="queues to take jobs from: gpu, cpu")] = "gpu,cpu",
    concurrency: Annotated[
        int, typer.Option(help="jobs at once: one process each (one per GPU)")
    ] = 1,
    name: Annotated[str | None, typer.Option(help="Celery node name, e.g. gpu1@%h")] = None,
) -> None:
    """Start a Celery worker of the distributed mode (LIFRNN_BROKER_URL, LIFRNN_DATABASE_URL).

    Each job runs in a pool process forked before CUDA is touched, so CUDA stays fork-safe, and
    a job that ignores cancellation can be terminated without stopping the worker.
    """
    from worker.celery_app import celery_app

    argv = ["worker", "--queues", queues, "--concurrency", str(concurrency), "--pool", "prefork"]
    argv += ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    if name:
        argv += ["--hostname", name]
    celery_app.worker_main(argv)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (Alembic) to LIFRNN_DATABASE_URL."""
    from lifrnn.settings import Settings
    from lifrnn.store import Store

    store = Store(Settings())
    try:
        store.migrate()
    finally:
        store.dispose()
    typer.echo(f"database at head: {store.settings.database_url}")


@db_app.command("fsck")
def db_fsck(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="delete the blobs nothing names (under the same lock as every deletion); rows "
            "whose bytes are missing are only listed",
        ),
    ] = False,
) -> None:
    """List rows whose bytes are missing and blobs no row names; exit 1 when there are any.

    Lines are tab-separated: ``missing<TAB>artifact id<TAB>blob`` and ``unnamed<TAB>blob``. A
    blob being written (a live claim) is not listed.
    """
    from lifrnn.settings import Settings
    from lifrnn.store import Store
    from lifrnn.store.blobs import check_consistency

    store = Store(Settings())
    try:
        store.migrate()
        with store.session() as session:
            found = check_consistency(session, store.artifacts, store.blob_ledger)
        for artifact_id, blob in found.missing:
            typer.echo(f"missing\t{artifact_id}\t{blob}")
        for blob in found.unnamed:
            typer.echo(f"unnamed\t{blob}")
        removed = store.collect_blobs(found.unnamed) if repair and found.unnamed else 0
    finally:
        store.dispose()
    summary = f"{len(found.missing)} rows without bytes, {len(found.unnamed)} unnamed blobs"
    if repair:
        summary += f"; {removed} unnamed blobs deleted"
    stderr.print(summary)
    if found.missing or (found.unnamed and removed < len(found.unnamed)):
        raise typer.Exit(1)


ExpiresInOption = Annotated[
    str | None,
    typer.Option(
        "--expires-in", help="the token expires after this: 90d, 12h or 30m (default: never)"
    ),
]


def _token_lifetime(expires_in: str | None) -> timedelta | None:
    """``--expires-in`` as a duration; a bad one ends the command (exit status 2)."""
    from lifrnn.store.users import parse_expires_in

    if expires_in is None:
        return None
    try:
        return parse_expires_in(expires_in)
    except ValueError as error:
        stderr.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None


@contextlib.contextmanager
def _users_session() -> Iterator[tuple[Settings, Session]]:
    """The configured store's settings and a session (migrated first) for ``lifrnn users``;
    committed at the end. An unknown user, or one that exists already, ends the command with
    its message (exit 1)."""
    from lifrnn.settings import Settings
    from lifrnn.store import Store
    from lifrnn.store.users import UnknownUserError, UserExistsError

    settings = Settings()
    store = Store(settings)
    try:
        store.migrate()
        with store.session() as session:
            yield settings, session
            session.commit()
    except (UnknownUserError, UserExistsError) as error:
        stderr.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    finally:
        store.dispose()


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="user name (unique)")],
    admin: Annotated[bool, typer.Option("--admin", help="may list every user's jobs")] = False,
    max_queued: Annotated[int | None, typer.Option(help="queued jobs at most")] = None,
    max_running: Annotated[int | None, typer.Option(help="running jobs at most")] = None,
    max_bytes: Annotated[
        int | None, typer.Option(help="bytes of uploads and artifacts at most")
    ] = None,
    expires_in: ExpiresInOption = None,
) -> None:
    """Create a user; prints its API token (shown only this once) on stdout."""
    from lifrnn.store.users import create_user

    lifetime = _token_lifetime(expires_in)
    with _users_session() as (_, session):
        _, token = create_user(
            session,
            name,
            admin=admin,
            max_queued=max_queued,
            max_running=max_running,
            max_bytes=max_bytes,
            expires_in=lifetime,
        )
    stderr.print(f"created {'admin' if admin else 'user'} {name!r}; its API token (shown once):")
    sys.stdout.write(token + "\n")


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="user name")],
    expires_in: ExpiresInOption = None,
    label: Annotated[str, typer.Option(help="what the token is for (shown by GET /me)")] = "",
) -> None:
    """Issue another API token of user NAME; prints it (shown only this once) on stdout."""
    from lifrnn.store.users import find_user, issue_token

    lifetime = _token_lifetime(expires_in)
    with _users_session() as (_, session):
        user = find_user(session, name)
        token = issue_token(session, user, label=label or "issued by an admin", expires_in=lifetime)
    expiry = f"expires in {expires_in}" if expires_in else "no expiry"
    stderr.print(f"new API token of {name!r} ({expiry}; shown once):")
    sys.stdout.write(token + "\n")


def _limit_value(text: str | None, option: str, *, size: bool) -> tuple[bool, float | None]:
    """(given, value) of a ``users limits`` option: a size (``64GiB``, ``8GB``, bytes) or a
    number; ``default`` clears the user's own limit."""
    if text is None:
        return False, None
    if text.strip().lower() == "default":
        return True, None
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        value = float(TypeAdapter(ByteSize).validate_python(text)) if size else float(text)
    except (ValidationError, ValueError):
        kind = "a size such as 64GiB or 8GB" if size else "a number such as 1e16"
        raise typer.BadParameter(
            f"{text!r}: expected {kind}, or 'default'", param_hint=option
        ) from None
    if not value > 0 or value == float("inf"):
        raise typer.BadParameter(f"{text!r}: must be positive and finite", param_hint=option)
    return True, value


@users_app.command("limits")
def users_limits(
    name: Annotated[str, typer.Argument(help="user name")],
    job_memory: Annotated[
        str | None, typer.Option(help="peak memory of one job, e.g. 64GiB ('default': clear)")
    ] = None,
    job_output: Annotated[
        str | None, typer.Option(help="artifact bytes of one job, e.g. 8GiB ('default': clear)")
    ] = None,
    job_work: Annotated[
        str | None, typer.Option(help="work of one job, nominal flop, e.g. 1e16 ('default')")
    ] = None,
) -> None:
    """Set user NAME's own per-job limits (docs/service.md "Limits"); prints the limits that
    now apply."""
    from lifrnn.store.limits import JobLimits
    from lifrnn.store.users import find_user

    changes = {
        column: _limit_value(text, option, size=size)
        for column, text, option, size in (
            ("max_job_memory", job_memory, "--job-memory", True),
            ("max_job_output", job_output, "--job-output", True),
            ("max_job_work", job_work, "--job-work", False),
        )
    }
    with _users_session() as (settings, session):
        user = find_user(session, name)
        for column, (given, value) in changes.items():
            if given:
                whole = value is not None and column != "max_job_work"
                setattr(user, column, int(value) if whole and value is not None else value)
        limits = JobLimits.for_user(settings, user)
    own = ", ".join(sorted(limits.own)) or "none"
    sys.stdout.write(
        f"{name}: job memory {limits.memory_bytes} B, job output {limits.output_bytes} B, "
        f"job work {limits.work:g} flop (own: {own})\n"
    )


@users_app.command("revoke")
def users_revoke(name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Delete every API token and dashboard session of user NAME (their jobs and files stay).

    A running server may accept a revoked token for LIFRNN_TOKEN_CACHE_SECONDS more; dashboard
    sessions end at once. ``lifrnn users token NAME`` gives the user a token again.
    """
    from lifrnn.store.users import revoke_user

    with _users_session() as (_, session):
        revoked = revoke_user(session, name)
    stderr.print(
        f"revoked {name!r}: {revoked.tokens} API tokens and {revoked.dashboard_sessions} "
        "dashboard sessions deleted"
    )


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run small simulations on one torch thread (faster than several, and far faster when
    other processes share the CPUs); the previous count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


SYNTH_TRIAL_NOISE = 0.5
"""Default ``--trial-noise`` of ``synth-nwb --spikes`` and ``--latents white-noise``: the trials of
one condition then differ by about a tenth of the rates' variance across conditions (0.3 gives a
twentieth; docs/science.md, "Ground truth with spikes")."""


class SynthLatents(StrEnum):
    """What the neurons of ``synth-nwb`` read."""

    network = "network"
    white_noise = "white-noise"


@dataclass(frozen=True)
class _SynthNetwork:
    """The generating network of ``synth-nwb`` and what its truth file says of it."""

    W: Any  # torch.Tensor (n, n)
    n_excitatory: int
    tau: float
    gain: str
    x_sp: Any  # torch.Tensor (n,) or None
    source: str
    method: str | None
    spectral_abscissa: float
    target_abscissa: float | None


def _synth_network(network: Path | None, n: int, seed: int) -> _SynthNetwork:
    """The saved ``network`` or a kao2021 SOC network of ``n`` units built from ``seed``, with
    its spectral abscissa and the target it was built for (a saved network's own
    ``target_abscissa``, else its ``method``'s, else none)."""
    import torch

    from lifrnn.networks import load_network
    from lifrnn_core.gramians import spectral_abscissa
    from lifrnn_core.soc import build_soc
    from lifrnn_core.soc_parameters import SOCMethod, SOCParameters

    if network is not None:
        try:
            saved = load_network(network)
        except (OSError, ValueError) as error:
            stderr.print(f"[red]--network: {error}[/]")
            raise typer.Exit(2) from None
        W = torch.from_numpy(saved.W)
        method = saved.metadata.get("method")
        target = None
        if "target_abscissa" in saved.metadata:
            target = float(saved.meta("target_abscissa"))
        elif method in get_args(SOCMethod):
            soc_method = cast(SOCMethod, method)
            target = SOCParameters.for_method(soc_method, n=W.shape[0]).target_abscissa
        return _SynthNetwork(
            W=W,
            n_excitatory=saved.n_excitatory,
            tau=float(saved.metadata.get("tau", 0.15)),
            gain=saved.metadata.get("gain", "relu"),
            x_sp=torch.from_numpy(saved.tensors["x_sp"]) if "x_sp" in saved.tensors else None,
            source=str(network),
            method=method,
            spectral_abscissa=spectral_abscissa(saved.W),
            target_abscissa=target,
        )
    parameters = SOCParameters.for_method("kao2021", n=n)
    logger.info("building a kao2021 SOC network of %d units (seed %d)", n, seed)
    built = build_soc(parameters, seed=seed)
    return _SynthNetwork(
        W=torch.from_numpy(built.weights),
        n_excitatory=parameters.n_excitatory,
        tau=0.15,
        gain="relu",
        x_sp=None,
        source=f"kao2021 SOC, n={n}, seed={seed}",
        method="kao2021",
        spectral_abscissa=spectral_abscissa(built.weights),
        target_abscissa=parameters.target_abscissa,
    )


def _synth_judge(problems: list[str], allow_poor: bool) -> None:
    """Stop ``synth-nwb`` (exit 1, nothing written) on a generator too poor to stand for a
    ground truth, unless ``--allow-poor``: then warn and go on."""
    if not problems:
        return
    if allow_poor:
        for problem in problems:
            logger.warning("poor ground truth, written as asked (--allow-poor): %s", problem)
        return
    for problem in problems:
        stderr.print(f"[red]synth-nwb: {problem}[/]")
    stderr.print(
        "[red]nothing written: a recording from this generator would be a poor ground truth. "
        "Try a larger --n or another --seed, or pass --allow-poor to write it anyway.[/]"
    )
    raise typer.Exit(1)


def _synth_trial_truth(synthetic: Any) -> dict[str, Any]:
    """The single-trial part of a truth file: each trial's true rates (spikes/s, in the bins
    its counts have), where its first bin starts, its true onset and its initial state."""
    truth = {
        "trial_rates": synthetic.trial_rates,
        "trial_rate_start": synthetic.trial_rate_start,
        "true_move_onset": synthetic.true_move_onset,
    }
    if synthetic.initial_states is not None:
        truth["initial_states"] = synthetic.initial_states
    return truth


@app.command("synth-nwb")
def synth_nwb(
    out: Annotated[Path, typer.Option("--out", "-o", help="the NWB file to write (*.nwb)")],
    network: Annotated[
        Path | None,
        typer.Option(
            help="a saved network (network.safetensors of an soc or fit job); default: a "
            "kao2021 SOC network of --n units built here",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    conditions: Annotated[
        int,
        typer.Option(
            min=8, max=108, help="reach directions, evenly spread over 360° (MC_Maze: 108)"
        ),
    ] = 8,
    trials: Annotated[
        int, typer.Option(min=20, max=200, help="trials per condition (MC_Maze: ~27)")
    ] = 30,
    neurons: Annotated[
        int, typer.Option(min=1, max=500, help="recorded neurons (MC_Maze: 182)")
    ] = 60,
    seed: Annotated[int, typer.Option(min=0, help="seed of the network, fit and spikes")] = 0,
    n: Annotated[
        int, typer.Option("--n", min=20, max=2000, help="units of the network built here")
    ] = 100,
    spikes: Annotated[
        bool,
        typer.Option(
            "--spikes",
            help="a single-trial benchmark: each trial starts from its own initial state "
            "(x*_c plus noise, --trial-noise); OUT.trials.safetensors holds every trial's "
            "true rates and initial state",
        ),
    ] = False,
    latents: Annotated[
        SynthLatents,
        typer.Option(
            help="what the neurons read: the network, or smoothed white noise with no network "
            "behind it (the null; its truth has no network)"
        ),
    ] = SynthLatents.network,
    trial_noise: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="trial-to-trial noise: the sd of each trial's initial state around x*_c, "
            "relative to x*'s RMS distance from x_sp (white-noise latents: of each trial's own "
            f"latents, relative to its condition's); default {SYNTH_TRIAL_NOISE} with --spikes "
            "or white-noise latents, else 0",
        ),
    ] = None,
    allow_poor: Annotated[
        bool,
        typer.Option(
            "--allow-poor",
            help="write the files even when the network did not converge or cannot make the "
            "reaches (otherwise: exit 1, nothing written)",
        ),
    ] = False,
) -> None:
    """Write a synthetic recording with a known truth: Poisson spikes of neurons reading a
    network fitted to reaches, in the MC_Maze NWB layout (NLB's held-out neurons marked), and
    OUT.truth.safetensors beside it (the generating network, a network file fit_data takes; with
    --spikes or white-noise latents OUT.trials.safetensors too: every trial's true rates). Exit
    status 1, nothing written, when the network did not converge (SOC abscissa above its
    target) or its reach fit stalled (reach R² below 0.7), unless --allow-poor."""
    if out.suffix.lower() != ".nwb":
        raise typer.BadParameter(f"{out}: the file name must end in .nwb", param_hint="--out")
    from lifrnn.nwb import write_nwb

    white_noise = latents is SynthLatents.white_noise
    if white_noise and network is not None:
        stderr.print("[red]--network: white-noise latents have no network behind them[/]")
        raise typer.Exit(2)
    noise = trial_noise if trial_noise is not None else SYNTH_TRIAL_NOISE
    if trial_noise is None and not (spikes or white_noise):
        noise = 0.0
    if white_noise:
        tensors, metadata, synthetic = _synth_white_noise(conditions, trials, neurons, seed, noise)
    else:
        tensors, metadata, synthetic = _synth_from_network(
            network, n, conditions, trials, neurons, seed, noise, allow_poor
        )
    # Every trial's truth in a file of its own: at MC_Maze's size it is hundreds of MB, and the
    # truth file stays a network file of the usual size that fit_data takes as its network.
    trial_truth = _synth_trial_truth(synthetic) if spikes or white_noise else None
    metadata.update(
        {
            "latents": latents.value,
            "trial_noise": str(noise),
            "seed": str(seed),
            "conditions": str(conditions),
            "trials_per_condition": str(trials),
            "neurons": str(neurons),
            "heldout_neurons": str(int(synthetic.recording.heldout.sum())),
            "trial_rate_bin_width": str(synthetic.trial_rate_bin_width),
            "lifrnn_version": __version__,
        }
    )
    write_nwb(out, synthetic)
    truth = out.with_name(out.stem + ".truth.safetensors")
    from lifrnn.files import write_safetensors

    write_safetensors(truth, tensors, metadata)
    if trial_truth is not None:
        trial_file = out.with_name(out.stem + ".trials.safetensors")
        write_safetensors(
            trial_file,
            trial_truth,
            {
                "kind": "synthetic_trial_truth",
                "trial_rate_bin_width": str(synthetic.trial_rate_bin_width),
                "recording": out.name,
            },
        )
        logger.info("wrote every trial's true rates and initial state to %s", trial_file)
    recording = synthetic.recording
    logger.info(
        "wrote %s: %d neurons (%d held out), %d trials, %d spikes",
        out,
        recording.n_units,
        int(recording.heldout.sum()),
        len(recording.trials),
        sum(len(times) for times in recording.spike_times),
    )
    logger.info("wrote the generating truth to %s", truth)
    if not white_noise:
        logger.info(
            "to fit it: `lifrnn upload %s` prints the file's id; submit a fit_data job naming "
            "it, then compare the fitted network with %s",
            out,
            truth.name,
        )


def _synth_white_noise(
    conditions: int, trials: int, neurons: int, seed: int, noise: float
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Truth tensors, truth metadata and the recording of ``synth-nwb --latents white-noise``."""
    from lifrnn_core.synthetic_recordings import LEAD, synthesize_white_noise_recording

    synthetic = synthesize_white_noise_recording(
        conditions=conditions,
        trials_per_condition=trials,
        neurons=neurons,
        seed=seed,
        trial_noise=noise,
    )
    tensors = {
        "mixing": synthetic.mixing,
        "baseline": synthetic.baseline,
        "rates": synthetic.rates,
        "velocity": synthetic.velocity,
    }
    metadata = {
        "kind": "synthetic_truth",
        "source": "synthetic",
        "network": "none: smoothed white-noise latents",
        "latent_dim": str(synthetic.mixing.shape[1]),
        "lead": str(LEAD),
    }
    return tensors, metadata, synthetic


def _synth_from_network(
    network: Path | None,
    n: int,
    conditions: int,
    trials: int,
    neurons: int,
    seed: int,
    noise: float,
    allow_poor: bool,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Truth tensors, truth metadata and the recording of ``synth-nwb`` from a network, judged
    (:func:`_synth_judge`) after its build and after its reach fit."""
    from lifrnn_core.dynamics import GainName
    from lifrnn_core.errors import InvalidNetworkError
    from lifrnn_core.synthetic_recordings import (
        LEAD,
        fit_reaches,
        generator_problems,
        synthesize_recording,
    )

    with _one_torch_thread():
        generator = _synth_network(network, n, seed)
        if generator.gain not in get_args(GainName):
            stderr.print(f"[red]--network: unknown gain {generator.gain!r} in its metadata[/]")
            raise typer.Exit(2)
        gain = cast(GainName, generator.gain)
        problems = generator_problems(
            spectral_abscissa=generator.spectral_abscissa,
            target_abscissa=generator.target_abscissa,
        )
        _synth_judge(problems, allow_poor)
        logger.info("fitting initial states and a hand readout for %d reaches", conditions)
        try:
            reaches = fit_reaches(
                generator.W,
                generator.n_excitatory,
                conditions=conditions,
                seed=seed,
                x_sp=generator.x_sp,
                tau=generator.tau,
                gain=gain,
            )
        except InvalidNetworkError as error:
            stderr.print(f"[red]{error}[/]")
            raise typer.Exit(2) from None
        logger.info("reach fit R² %.2f..%.2f", min(reaches.r2), max(reaches.r2))
        reach_problems = generator_problems(reach_r2=reaches.r2)
        _synth_judge(reach_problems, allow_poor)
        dt = 1e-3
        synthetic = synthesize_recording(
            generator.W,
            generator.n_excitatory,
            x_sp=reaches.x_sp,
            h=reaches.h,
            x_star=reaches.x_star,
            C=reaches.C,
            tau=generator.tau,
            dt=dt,
            gain=gain,
            trials_per_condition=trials,
            neurons=neurons,
            seed=seed,
            initial_state_noise=noise,
        )
    tensors = {
        "W": generator.W,
        "h": reaches.h,
        "x_sp": reaches.x_sp,
        "x_star": reaches.x_star,
        "C": reaches.C,
        "mixing": synthetic.mixing,
        "baseline": synthetic.baseline,
        "rates": synthetic.rates,
        "velocity": synthetic.velocity,
    }
    metadata: dict[str, Any] = {
        "kind": "fit",
        "source": "synthetic",
        "network": generator.source,
        "n_excitatory": str(generator.n_excitatory),
        "tau": str(generator.tau),
        "dt": str(dt),
        "gain": gain,
        "duration": str(round((reaches.targets.shape[1] - 1) * reaches.dt, 9)),
        "lead": str(LEAD),
        "directions_deg": reaches.directions_deg,
        "target": "hand_velocity",
        "r2": reaches.r2,
        "spectral_abscissa": str(generator.spectral_abscissa),
        "initial_state_sigma": str(synthetic.initial_state_sigma),
        "poor": problems + reach_problems,
    }
    if generator.method is not None:
        metadata["method"] = generator.method
    if generator.target_abscissa is not None:
        metadata["target_abscissa"] = str(generator.target_abscissa)
    return tensors, metadata, synthetic
