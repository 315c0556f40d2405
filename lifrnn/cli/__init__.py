"""The ``lifrnn`` command line (typer): the top floor, the one layer that may import ``api/`` and
``worker/`` (to serve and to run a worker).

``lifrnn run SPEC.json --out DIR [--json]`` runs one job in-process and writes its artifacts into
DIR; the job is also recorded in the local store (``LIFRNN_HOME``), unless ``--no-store``. Its
spec may name local files (``initial_weights``, ``network``, ``movements.targets_file``): they
are kept in the local store and the recorded spec names their ids. With ``--json`` the last line
on stdout is the job result as one JSON object; otherwise a progress bar (on a terminal) and a
readable summary. Exit status: 0 succeeded, 1 failed or cancelled, 2 invalid spec.

``lifrnn serve`` starts the job service (REST API and in-process workers); ``lifrnn users create
NAME [--admin]`` creates a user and prints its API token once. ``lifrnn users token NAME`` issues
another token, ``lifrnn users revoke NAME`` deletes all of a user's tokens and dashboard sessions;
tokens may expire (``--expires-in 90d``, ``12h``, ``30m``). The service commands (``submit``,
``jobs``, ``status``, ``sweep``, ...) take ``--url`` and ``--token`` (defaults ``$LIFRNN_URL``
and ``$LIFRNN_TOKEN``, else the local server's token file).

One module per command group: :mod:`~lifrnn.cli.root` (the app, its options and logging),
:mod:`~lifrnn.cli.local` (``version``, ``run``, ``serve``, ``worker``),
:mod:`~lifrnn.cli.serving` (the HTTP server behind ``serve``), :mod:`~lifrnn.cli.admin`
(``db``, ``users``), :mod:`~lifrnn.cli.synth` (``synth-nwb``), and the service commands:
:mod:`~lifrnn.cli.jobs`, :mod:`~lifrnn.cli.sweeps`, :mod:`~lifrnn.cli.demo`,
:mod:`~lifrnn.cli.account`, :mod:`~lifrnn.cli.nlb_export`, with what they share in
:mod:`~lifrnn.cli.output`.
"""

from lifrnn.cli.root import app, register_service_commands

__all__ = ["app", "register_service_commands"]
