"""Files and folders only their owner may read: ``LIFRNN_HOME``, the SQLite file, the artifact
folder, the token file and the dashboard's session key.

Folders this module creates get mode 700 and files mode 600, whatever the process's umask; what
exists already is left as its owner set it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents, each readable by the owner only (700).

    Folders that exist keep their mode. Returns ``path``.
    """
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # another process made it first: its mode is its own
            continue
        os.chmod(folder, PRIVATE_DIR_MODE)  # the umask may have taken bits away; never adds
    return path


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 600 unless it exists; True when it was created here.

    Used before a program (SQLite) creates the file itself with its umask's mode.
    """
    private_dir(Path(path).parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(descriptor)
    os.chmod(path, PRIVATE_FILE_MODE)
    return True


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically; the file has mode 600 from its first byte."""
    path = Path(path)
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(text)
        os.chmod(temporary, PRIVATE_FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """The secret kept in ``path``; made (random, URL-safe text, mode 600) when missing.

    Processes that start together agree on one secret: the first to link its file wins and the
    others read that one.
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text().strip()
        if existing:
            return existing
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_urlsafe(nbytes) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)  # atomic, and refuses to replace another process's secret
    finally:
        temporary.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if not secret:
        raise RuntimeError(f"{path} is empty: delete it to have a new secret made")
    return secret
