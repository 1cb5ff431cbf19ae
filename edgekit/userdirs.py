"""Where edgekit keeps per-user files, and keeping them private: folders 0700, files 0600.

The MQTT outbox holds detections and camera snapshots and the planner's caches steer which model
is loaded, so neither may be readable (or plantable) by other local users — whatever the umask,
and also when an older edgekit (or a looser umask) created them with wider modes: those are
tightened here, and a folder or file owned by someone else is refused with what to do.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError

__all__ = ["cache_dir", "state_dir", "private_dir", "private_file", "create_private", "check_creatable"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def cache_dir() -> Path:
    """The planner's cache folder: ``$EDGEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgekit`` (~/.cache/edgekit)."""
    base = os.environ.get("EDGEKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgekit")
    return Path(base)


def state_dir() -> Path:
    """The folder of the default MQTT outbox: ``$XDG_STATE_HOME/edgekit`` (~/.local/state/edgekit)."""
    return Path(os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")) / "edgekit"


def private_dir(path: str | os.PathLike, *, tighten: bool = True) -> Path:
    """Make sure ``path`` is a folder only its owner can use, creating it (and any missing parent) 0700.

    Args:
        path: the folder.
        tighten: also check and chmod an existing folder to 0700 (for edgekit's own folders; False for
            a folder the user chose that may hold other things, e.g. the one of an explicit ``--outbox``).
    Returns: ``path`` as a Path.
    Raises: ConfigError if it is not a folder, is owned by another user or is a shared sticky folder
        such as /tmp (when ``tighten``); OSError if it cannot be created.
    """
    path = Path(os.path.abspath(path))
    missing = []
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue  # another process made it meanwhile: checked below like any existing folder
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask; chmod's is not
    if tighten and path not in missing:
        st = _check_owned(path, want_dir=True)
        if st.st_mode & stat.S_ISVTX:
            raise ConfigError(f"{path}: a shared folder (sticky bit, like /tmp), expected a folder of edgekit's "
                              "own; point edgekit at a folder only you use")
        if stat.S_IMODE(st.st_mode) != DIR_MODE:
            os.chmod(path, DIR_MODE)
    return path


def private_file(path: str | os.PathLike) -> bool:
    """Tighten an existing file to 0600; returns False if there is no such file.

    Raises: ConfigError if it is not a regular file or is owned by another user.
    """
    try:
        st = _check_owned(path, want_dir=False)
        if stat.S_IMODE(st.st_mode) != FILE_MODE:
            os.chmod(path, FILE_MODE)
    except FileNotFoundError:  # none, or gone meanwhile (SQLite's journal comes and goes)
        return False
    return True


def create_private(path: str | os.PathLike) -> None:
    """Create ``path`` as an empty 0600 file if it does not exist, else tighten it (see :func:`private_file`)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        private_file(path)
        return
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have removed bits we need (e.g. umask 0o200)
    finally:
        os.close(fd)


def check_creatable(path: str | os.PathLike, *, folder: bool = False, private: bool = False) -> None:
    """Refuse, without creating anything, a file (``folder``: a folder) that could not be written
    at ``path``, creating its missing parents (``edgekit run --check`` and a settings file's paths).

    Args:
        path: the file or folder.
        folder: ``path`` is a folder (``save_annotated``), else a file (``mqtt.outbox``).
        private: the file must be ours, as :func:`private_file` keeps it (the outbox).
    Raises: ConfigError naming what is in the way, what was expected and what to do.
    """
    path = os.path.abspath(path)
    kind = "folder" if folder else "file"
    if os.path.lexists(path):
        st = _check_owned(path, want_dir=folder) if private else os.stat(path)
        if stat.S_ISDIR(st.st_mode) != folder:
            raise ConfigError(f"{path}: expected a {kind}, found {'a folder' if not folder else 'a file'}; "
                              f"give the path of a {kind}")
        if not os.access(path, os.W_OK | (os.X_OK if folder else os.R_OK)):
            raise ConfigError(f"{path}: expected a {kind} you may write, found one you may not; fix its "
                              "permissions or choose another path")
        return
    parent = os.path.dirname(path)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(f"{path}: expected a folder at {parent} to make the {kind} in, found a file; choose "
                          "another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: expected a folder you may write in at {parent}, found one you may not; "
                          "fix its permissions or choose another path")


def _check_owned(path: str | os.PathLike, want_dir: bool) -> os.stat_result:
    st = os.stat(path)
    kind = "folder" if want_dir else "file"
    if want_dir and not stat.S_ISDIR(st.st_mode) or not want_dir and not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: expected a {kind}, found something else; move it away")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"{path}: this {kind} belongs to user id {st.st_uid}, not to you (user id {os.geteuid()}), "
                          "so edgekit cannot keep it private; remove it (or chown it to yourself) or point edgekit "
                          "elsewhere (--outbox, XDG_STATE_HOME, EDGEKIT_CACHE_DIR)")
    return st
