"""mfrec._files: atomic, durable writes; nothing left behind by a killed writer; modes kept."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfrec import _files as mio

SRC = str(Path(mio.__file__).resolve().parents[1])


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _write_with(helper: str, path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through `atomic_write` or `atomic_path`."""
    if helper == "atomic_write":
        with mio.atomic_write(path) as f:
            f.write(data)
    else:
        with mio.atomic_path(path) as tmp:
            tmp.write_bytes(data)


@pytest.fixture(params=["anonymous", "named"])
def mode(request, monkeypatch):
    """Run a test with O_TMPFILE (where the system has it) and with the named-temporary fallback."""
    if request.param == "named":
        monkeypatch.setattr(mio, "_open_anonymous", lambda folder: None)
    return request.param


def test_atomic_write_replaces_and_keeps_nothing_else(tmp_path, mode):
    target = tmp_path / "m.bin"
    with mio.atomic_write(target) as f:
        f.write(b"one")
    with mio.atomic_write(target) as f:
        f.write(b"two")
    assert target.read_bytes() == b"two"
    assert _listing(tmp_path) == ["m.bin"]


def test_failed_write_keeps_the_old_file(tmp_path, mode):
    target = tmp_path / "m.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with mio.atomic_write(target) as f:
            f.write(b"new, half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _listing(tmp_path) == ["m.bin"]


@pytest.mark.parametrize("helper", ["atomic_write", "atomic_path"])
def test_a_folder_that_refuses_the_temporary_file_is_named_as_the_target(tmp_path, monkeypatch, mode, helper):
    """The error named the hidden `.<name>.<pid>-...tmp`, a file the user never gave."""
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if ".tmp" in str(path) or flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(mio.os, "open", refuse)
    with pytest.raises(PermissionError) as exc:
        _write_with(helper, tmp_path / "m.bin", b"x")
    assert exc.value.filename == str(tmp_path / "m.bin") and "Permission denied" in str(exc.value)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("helper", ["atomic_write", "atomic_path"])
def test_a_write_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path, mode, helper):
    """Saving to a symlink (models/current -> v3.mfrec) replaced the link with a file."""
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "v3.mfrec"
    target.write_bytes(b"old")
    link = tmp_path / "current.mfrec"
    link.symlink_to(target)
    dangling = tmp_path / "next.mfrec"
    dangling.symlink_to(tmp_path / "store" / "v4.mfrec")
    for path, data in ((link, b"new"), (dangling, b"fresh")):
        _write_with(helper, path, data)
        assert path.is_symlink() and path.read_bytes() == data
    assert target.read_bytes() == b"new" and (tmp_path / "store" / "v4.mfrec").read_bytes() == b"fresh"
    assert _listing(tmp_path / "store") == ["v3.mfrec", "v4.mfrec"]


@pytest.mark.parametrize("helper", ["atomic_write", "atomic_path"])
def test_modes_new_and_kept(tmp_path, helper, mode):
    target = tmp_path / "m.bin"

    def write(data: bytes) -> None:
        _write_with(helper, target, data)

    old = os.umask(0o027)
    try:
        write(b"a")
        assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0666 & ~umask
        os.chmod(target, 0o600)
        write(b"b")
        assert stat.S_IMODE(target.stat().st_mode) == 0o600  # re-saving keeps the mode
    finally:
        os.umask(old)
    assert target.read_bytes() == b"b"


def test_data_and_folder_are_fsynced(tmp_path, monkeypatch, mode):
    synced: list[int] = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_IFMT(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    with mio.atomic_write(tmp_path / "m.bin") as f:
        f.write(b"x")
    assert stat.S_IFREG in synced and stat.S_IFDIR in synced


def test_directory_or_file_parent_is_refused_before_writing(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        with mio.atomic_write(tmp_path / "out"):
            pytest.fail("the body must not run")
    (tmp_path / "r.csv").write_text("x")
    with pytest.raises(NotADirectoryError, match="r.csv"):
        with mio.atomic_path(tmp_path / "r.csv" / "x.mfrec"):
            pytest.fail("the body must not run")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "m.mfrec"
    host = mio._host_tag()
    dead = tmp_path / f".m.mfrec.{_dead_pid()}-{host}-0123abcd.tmp"
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".m.mfrec.{live_proc.pid}-{host}-0123abcd.tmp"
        other_host = tmp_path / f".m.mfrec.1-00000000-0123abcd.tmp"
        legacy_old = tmp_path / ".m.mfrec.k3j_x9q2.tmp"  # an earlier version's mkstemp name
        legacy_new = tmp_path / ".m.mfrec.abcdefgh.tmp"
        unrelated = tmp_path / ".other.mfrec.abcdefgh.tmp"
        for p in (dead, live, other_host, legacy_old, legacy_new, unrelated):
            p.write_bytes(b"partial")
        day_ago = time.time() - 2 * mio.STALE_AFTER
        os.utime(legacy_old, (day_ago, day_ago))
        with mio.atomic_write(target) as f:
            f.write(b"x")
        left = set(_listing(tmp_path))
        assert dead.name not in left and legacy_old.name not in left
        assert {live.name, other_host.name, legacy_new.name, unrelated.name, "m.mfrec"} <= left
    finally:
        live_proc.kill()
        live_proc.wait()


_KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {src!r})
import mfrec._files as mio
if {named}:
    mio._open_anonymous = lambda folder: None
with mio.atomic_write({target!r}) as f:
    f.write(b"x" * (8 << 20))
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("named", [False, True])
def test_kill_9_mid_save_leaves_nothing_behind_for_long(tmp_path, named):
    target = tmp_path / "m.mfrec"
    target.write_bytes(b"old model")
    code = _KILLED_WRITER.format(src=SRC, named=named, target=str(target))
    proc = subprocess.run([sys.executable, "-c", code], timeout=120)
    assert proc.returncode == -9
    assert target.read_bytes() == b"old model"
    probe = mio._open_anonymous(tmp_path)
    if probe is not None:
        os.close(probe)
        if not named:
            assert _listing(tmp_path) == ["m.mfrec"]  # O_TMPFILE: the kernel freed the unnamed file
    if named:
        assert len(_listing(tmp_path)) == 2  # the killed writer's named temporary is there ...
    with mio.atomic_write(target) as f:  # the next save beside it removes the named leftover
        f.write(b"new model")
    assert _listing(tmp_path) == ["m.mfrec"]
    assert target.read_bytes() == b"new model"
