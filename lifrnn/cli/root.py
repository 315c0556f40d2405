"""The ``lifrnn`` app: its options (``-v``, ``--version``), logging, and every command group
registered in the order ``lifrnn --help`` lists them."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console

from lifrnn import __version__
from lifrnn.cli import account, admin, demo, jobs, local, nlb_export, sweeps, synth

# Commands import what they use (the spec models, settings, the store, torch) when they run, so
# that ``lifrnn --help`` and ``--version`` start in a fraction of a second
# (tests/unit/test_cli_imports.py).

app = typer.Typer(
    name="lifrnn",
    help="Recurrent networks of motor cortex: build, fit and query them.",
    no_args_is_help=True,
    add_completion=False,
)
stderr = Console(stderr=True)


def register_service_commands(app: typer.Typer) -> None:
    """Add the commands that talk to a running service (through :mod:`lifrnn.client`) to
    ``app``: jobs, files, networks, ``demo``, ``me``, ``tokens``, ``nlb-export`` and sweeps."""
    jobs.register(app)
    demo.register(app)
    account.register(app)
    nlb_export.register(app)
    sweeps.register(app)


admin.register(app)
register_service_commands(app)
local.register(app)
synth.register(app)


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
