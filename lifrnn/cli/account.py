"""``lifrnn me`` (who you are, your limits and usage) and ``lifrnn tokens rotate``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from lifrnn.cli.output import (
    JsonOption,
    TokenOption,
    UrlOption,
    _format,
    _service,
    _when,
    _write_json,
    stderr,
)


def _limit(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _format(value)


def me(as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None) -> None:
    """Who you are: role, quotas and what you use of them, and your token's expiry."""
    with _service(url, token) as client:
        data = client.me()
    if as_json:
        _write_json(data)
        return
    console = Console()
    console.print(f"[bold]{data['name']}[/] ({data['role']})")
    token_info = data.get("token")
    if token_info:
        expires = _when(token_info["expires_at"]) or "never"
        console.print(
            f"token {token_info['label']!r}: created {_when(token_info['created_at'])} UTC, "
            f"expires {expires}{' UTC' if token_info['expires_at'] else ''}"
        )
    quotas, usage = data["quotas"], data["usage"]
    own = set(quotas.get("own", []))

    def at_most(name: str) -> str:
        return _limit(quotas[name]) + (" (yours)" if name in own else "")

    table = Table("", "used", "at most", box=box.SIMPLE_HEAD)
    table.add_row("queued jobs", str(usage["queued"]), at_most("max_queued"))
    table.add_row("running jobs", str(usage["running"]), at_most("max_running"))
    table.add_row("bytes stored", f"{usage['bytes']:,}", at_most("max_bytes"))
    table.add_row("one job's peak memory, bytes", "", at_most("max_job_memory"))
    table.add_row("one job's artifact bytes", "", at_most("max_job_output"))
    table.add_row("one job's work, FLOPs", "", at_most("max_job_work"))
    console.print(table)


tokens_app = typer.Typer(help="Your API token.", no_args_is_help=True)


@tokens_app.command("rotate")
def tokens_rotate(
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in",
            help="lifetime of the new token: 90d, 12h or 30m (default: the old one's)",
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Swap your API token for a new one, printed on stdout (shown once); the old one stops
    working. A token read from the local token file is replaced there too."""
    with _service(url, token) as client:
        answer = client.rotate_token(expires_in)
        token_file = client.token_file
    sys.stdout.write(answer["token"] + "\n")
    expires = f"expires {_when(answer['expires_at'])} UTC" if answer["expires_at"] else "no expiry"
    stderr.print(f"new API token ({expires}); the old one no longer works")
    if token_file is not None and token_file.is_file():
        if token_file.read_text().strip() == answer["token"]:
            stderr.print(f"wrote it to {token_file} (mode 600)")
        else:
            stderr.print(f"[red]could not write it to {token_file}: copy it from stdout[/]")
    else:
        stderr.print("put it where you keep your token (LIFRNN_TOKEN, --token)")


def register(app: typer.Typer) -> None:
    """Add ``me`` and ``tokens`` to the ``lifrnn`` app."""
    app.command(name="me")(me)
    app.add_typer(tokens_app, name="tokens")
