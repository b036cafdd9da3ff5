"""Small file-system helpers: atomic, durable writes that leave nothing behind.

Both helpers write beside the target and rename over it, so a reader sees the old file or the
new one, never half of one; the data and the directory entry are fsynced before returning.
Permissions: a new file gets ``0666 & ~umask`` (the kernel applies the umask when the temporary
file is created); re-saving over an existing file keeps that file's mode.

What a crash (``kill -9``, power loss) leaves behind:

* `atomic_write` (used for model files) writes into an anonymous ``O_TMPFILE`` inode on Linux:
  it has no name until it is complete, so a killed writer leaves nothing; the kernel frees it.
* `atomic_path` (writers that need a path name, e.g. matplotlib, Parquet) and `atomic_write` where
  ``O_TMPFILE`` is unsupported use a named temporary ``.<name>.<pid>-<host>-<random>.tmp``. The
  next atomic write to the same target removes such leftovers whose process (on this host) is
  gone, and any older than a day (also the ``.<name>.<random>.tmp`` files of earlier versions).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

#: leftovers older than this (seconds) are removed whoever wrote them: no save takes a day
STALE_AFTER = 24 * 3600


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _temp_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}-{_host_tag()}-{secrets.token_hex(4)}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or an odd pid): leave its file alone
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes to ``path`` left behind; returns them.

    A temporary file is stale when the process that wrote it (pid and host are in its name) is no
    longer running on this host, or when it is older than `STALE_AFTER` (other hosts, earlier
    mfrec versions' ``mkstemp`` names). Files being written by a live process are kept.
    """
    path = Path(path)
    ours = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)-([0-9a-f]{{8}})-[0-9a-f]{{8}}\.tmp$")
    legacy = re.compile(rf"^\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp$")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    host, now = _host_tag(), time.time()
    for entry in entries:
        m = ours.match(entry.name)
        if m is None and legacy.match(entry.name) is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        dead = m is not None and m.group(2) == host and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1)))
        if dead or now - st.st_mtime > STALE_AFTER:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def _target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` replaces: a symbolic link's target (the link stays a link,
    as when an editor saves through it), else ``path`` itself."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _cannot_write(exc: OSError, path: Path) -> OSError:
    """``exc`` (raised on the temporary file beside ``path``) as an error naming ``path``."""
    return type(exc)(exc.errno, f"cannot write here ({exc.strerror or exc})", str(path))


def _prepare(path: Path) -> int | None:
    """Check the target, create its folder; return the mode to keep (None for a new file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file path to write", str(path))
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "is not a regular file; refusing to replace it", str(path))
    parent = path.parent
    for p in (parent, *parent.parents):  # the nearest existing ancestor must be a folder
        if p.exists():
            if not p.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{p} is a file, not a folder", str(path))
            break
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    return None if st is None else stat.S_IMODE(st.st_mode)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory
    finally:
        os.close(fd)


def _open_anonymous(folder: Path) -> int | None:
    """An unnamed file in ``folder`` (Linux ``O_TMPFILE``), or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.ENOTSUP):
            return None
        raise


def _publish(fd: int, keep_mode: int | None, tmp: Path | None, path: Path) -> None:
    """fsync ``fd``, fix its mode, give it the name ``path`` atomically, fsync the folder."""
    if keep_mode is not None:
        os.fchmod(fd, keep_mode) if hasattr(os, "fchmod") else os.chmod(tmp or path, keep_mode)
    os.fsync(fd)
    if tmp is None:  # anonymous: name it (beside the target) and rename that name over the target
        tmp = _temp_name(path)
        _link_anonymous(fd, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _link_anonymous(fd: int, tmp: Path) -> None:
    """Give the ``O_TMPFILE`` file ``fd`` the name ``tmp`` (linkat through /proc); where the
    kernel refuses, copy it to ``tmp`` instead."""
    dir_fd = os.open(tmp.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:  # a dst_dir_fd makes CPython call linkat(..., AT_SYMLINK_FOLLOW), which /proc/self/fd needs
        os.link(f"/proc/self/fd/{fd}", tmp.name, dst_dir_fd=dir_fd, follow_symlinks=True)
        return
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(out, stat.S_IMODE(os.fstat(fd).st_mode))
        offset, size = 0, os.fstat(fd).st_size
        while offset < size:
            chunk = os.pread(fd, min(2**24, size - offset), offset)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
            offset += len(chunk)
        os.fsync(out)
    except BaseException:
        os.close(out)
        tmp.unlink(missing_ok=True)
        raise
    os.close(out)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a writable, seekable binary file; on success it replaces ``path`` atomically and
    durably, on an exception it is discarded (the old file stays). See the module docstring.
    Through a symbolic link the link's target is replaced, and the link kept."""
    path = _target(path)
    keep_mode = _prepare(path)
    tmp = None
    try:
        fd = _open_anonymous(path.parent)
        if fd is None:
            tmp = _temp_name(path)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:  # name the file being written, not the hidden temporary
        raise _cannot_write(exc, path) from None
    f = os.fdopen(fd, "w+b")
    try:
        with f:
            yield f
            f.flush()
            _publish(f.fileno(), keep_mode, tmp, path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that need a file name; on success rename
    it over ``path`` (atomic and durable), on an exception delete it. A symbolic link's target
    is replaced, as by `atomic_write`."""
    path = _target(path)
    keep_mode = _prepare(path)
    tmp = _temp_name(path)
    try:
        os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise _cannot_write(exc, path) from None
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            _publish(fd, keep_mode, tmp, path)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
