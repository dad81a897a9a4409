"""Atomic output: a file (or folder) appears complete under its final name, or not at all.

Every writer in unetkit goes through :func:`atomic_path` (files) or
:func:`atomic_dir` (folders such as exported packages). The temporary lies
next to the target, is flushed to disk (``fsync``) before the rename, and
gets the permissions a plain ``open()`` would give under the process umask
(``0o666 & ~umask`` for files, ``0o777 & ~umask`` for folders), not the
0600 of :func:`tempfile.mkstemp`, so colleagues on a shared server can read
the results.

Temporary names are ``.<name>.<host>-<pid>.<random>.unetkit-tmp``: they never
end in the real suffix (no tool mistakes one for a result), and
:func:`remove_stale_temps` can tell the leftovers of a killed process (same
host, process gone) from the temporaries of a writer still running.

Errors name the user's path, never the temporary: ``OutputPathError`` (an
``OSError`` and a ``ValueError``) with one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

__all__ = [
    "OutputPathError",
    "TEMP_SUFFIX",
    "atomic_path",
    "atomic_dir",
    "check_output_dir",
    "check_output_file",
    "remove_stale_temps",
    "file_mode",
    "sha256_file",
]

TEMP_SUFFIX = ".unetkit-tmp"
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMP_RE = re.compile(r"^\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[^.]+" + re.escape(TEMP_SUFFIX) + "$")


class OutputPathError(OSError, ValueError):
    """An output path that cannot be written (names the user's path); both an ``OSError`` and a ``ValueError``."""


def _umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no way to read it without setting it: set and restore at once
    os.umask(mask)
    return mask


def file_mode(*, directory: bool = False) -> int:
    """Permission bits a new file (or folder) gets from ``open()`` (``mkdir``) under the current umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _first_existing_parent(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _check_parents(path: Path, what: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{path}: cannot create {what}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputPathError(f"{path}: cannot create {what}: no write permission in {parent}")
            return


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path`` is or can become a writable folder.

    Raises :class:`OutputPathError` naming ``path`` when it is an existing
    file, lies under a file, or its nearest existing parent is not writable.
    Creates nothing.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise OutputPathError(f"{path}: exists and is a file, not an output folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{path}: no write permission in this output folder")
        return path
    _check_parents(path, "the output folder")
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """Check, before any work, that a file can be written at ``path`` (see :func:`check_output_dir`)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path}: is a folder; expected an output file name")
    if path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: no write permission in {path.parent}")
    _check_parents(path, "the file")
    return path


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot create its folder ({_reason(exc)})") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary file path next to ``path``; on success fsync it and rename it onto ``path``.

    The caller writes the temporary (in any format: the temporary's name does
    not end in the real suffix, so pass the format explicitly). On an
    exception the temporary is removed and ``path`` is untouched. OS errors
    become :class:`OutputPathError` naming ``path``.
    """
    path = Path(path)
    _make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot write ({_reason(exc)})") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputPathError):
            raise OutputPathError(f"{path}: cannot write ({_reason(exc)})") from None
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False):
    """Yield a temporary folder next to ``path``; on success rename it onto ``path``.

    ``path`` must not exist unless ``replace`` (then the old folder is removed
    after the new one is complete). Files written inside should be flushed by
    their writers; the folder gets the umask's permissions.
    """
    path = Path(path)
    if path.exists() and not replace:
        raise OutputPathError(f"{path}: already exists")
    _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=TEMP_SUFFIX))
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        yield tmp
        os.chmod(tmp, file_mode(directory=True))
        if path.exists():
            old = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.old{TEMP_SUFFIX}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputPathError):
            raise OutputPathError(f"{path}: cannot write ({_reason(exc)})") from None
        raise


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:  # Linux: the state follows the parenthesised command name
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed unetkit processes of this host left in ``folder``.

    A temporary whose writer is still running (or runs on another host) is
    kept. Returns the removed paths; a missing folder removes nothing.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TEMP_RE.match(entry.name)
        if not m or m["host"] != _HOST or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            removed.append(entry)
    return removed


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
