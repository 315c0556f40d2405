"""``python -m lifrnn`` runs the command line."""

from lifrnn.cli import app

app(prog_name="lifrnn")
