"""Writing outputs so that nothing is lost, corrupt or left behind (stdlib only).

Every output edgeft writes (a run folder, a bundle, a package zip) follows four rules:

- **One writer.** A lock file beside the output (``.NAME.edgeft-lock``, ``fcntl.flock``) makes a
  second process that writes the same output fail at once, before any work.
- **Temporary work in one place.** Everything unfinished lives beside the output in
  ``.NAME.edgeft-PID-XXXX.tmp``. It is removed on a normal exit, on an error and on SIGTERM or
  SIGINT (the CLI turns both into exceptions); after a SIGKILL the next run on the same output
  reaps what a dead PID left (``reap``).
- **One commit.** A file is replaced by one ``rename``; a finished folder is swapped in by
  ``renameat2(RENAME_EXCHANGE)``, so the output is the old or the new one at every instant.
  Where the kernel or file system lacks it, the old folder is first moved into the
  temporary folder as ``old``; if a kill lands between the two renames, ``reap`` moves it back.
- **Shareable results.** Outputs get the user's umask, not the 0700/0600 of mkdtemp/mkstemp.

``commit_point`` marks each commit for the fault-injection tests: ``EDGEFT_FAULT_LOG=FILE``
lists them, ``EDGEFT_FAULT_KILL_AT=N`` sends SIGKILL to the process just before the Nth.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterator

from edgeft.errors import OutputError
from edgeft.output_lock import LOCK_FILE, OutputLock, unlock_stale

__all__ = ["OutputError", "OutputLock"]  # re-exported: what writes outputs imports them from here

_TMP = re.compile(r"^\.(?P<name>.+)\.edgeft-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")
_FAULTS = {"count": 0}


# -- fault injection and commits ------------------------------------------------------------------
def commit_point(what: str) -> None:
    """Called just before every rename that commits an output (see the module docstring)."""
    log = os.environ.get("EDGEFT_FAULT_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(what + "\n")
    kill_at = os.environ.get("EDGEFT_FAULT_KILL_AT")
    if kill_at:
        _FAULTS["count"] += 1
        if _FAULTS["count"] == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


# -- permissions ----------------------------------------------------------------------------------
def current_umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: Path) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the modes the user's umask gives."""
    mask = current_umask()
    paths = [path] + (sorted(path.rglob("*")) if path.is_dir() and not path.is_symlink() else [])
    for p in paths:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


# -- temporary work and reaping -------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_prefix(path: Path) -> str:
    return f".{path.name}.edgeft-{os.getpid()}-"


def make_temp_dir(path: Path) -> Path:
    """A private folder beside ``path`` for its unfinished work."""
    return Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp"))


def reap(folder: Path, name: str | None = None) -> list[Path]:
    """Remove temporary files and folders that dead edgeft processes left in ``folder`` (for the
    output ``name`` only, when given). A folder left between the two renames of a fallback
    replace gives its ``old`` output back first."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        lock = LOCK_FILE.match(entry.name)
        if lock and (name is None or lock["name"] == name) and unlock_stale(entry):
            removed.append(entry)
            continue
        match = _TMP.match(entry.name)
        if not match or (name is not None and match["name"] != name) or _pid_alive(int(match["pid"])):
            continue
        output = folder / match["name"]
        old = entry / "old"
        if old.is_dir() and not old.is_symlink() and not output.exists():
            os.replace(old, output)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def scratch_dir(kind: str) -> Path:
    """A folder in the system's temporary directory for work with no output beside it (``kind``
    names it); reaps the ones that dead processes left."""
    root = Path(tempfile.gettempdir())
    reap(root)
    return Path(tempfile.mkdtemp(dir=root, prefix=f".edgeft-{kind}.edgeft-{os.getpid()}-", suffix=".tmp"))


@contextlib.contextmanager
def scratch(kind: str) -> Iterator[Path]:
    folder = scratch_dir(kind)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- atomic files ---------------------------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary sibling that one rename commits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        publish_mode(Path(tmp))
        commit_point(f"write {path.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


# -- space and errors -----------------------------------------------------------------------------
def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


def check_space(path: Path, need: int, what: str) -> None:
    """Fail before the work when the file system of ``path`` has less than ``need`` bytes free."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise OutputError(f"not enough space for {what} at {path}: needs about {_mb(need)}, {_mb(free)} free")


@contextlib.contextmanager
def write_errors(path: Path, need: int | None = None) -> Iterator[None]:
    """Turn a full disk, a quota, a read-only or a forbidden file system into one clear error."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            needed = f": needs about {_mb(need)}" if need else ""
            raise OutputError(f"no space left on the device while writing {path}{needed}; nothing was written") from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        raise


# -- a whole output -------------------------------------------------------------------------------
class Output:
    """``with Output(path, force, replaceable) as out:`` write the result into ``out.result`` (a
    folder, or a file path with ``kind="file"``) and scratch work into ``out.work``; a clean exit
    commits the result at ``path`` in one step, an error or a signal leaves ``path`` as it was.

    ``replaceable(path)`` says why an existing ``path`` must not be replaced (None: it may be);
    it is asked only with ``force``."""

    def __init__(self, path: str | Path, force: bool = False, kind: str = "folder",
                 replaceable: Callable[[Path], str | None] | None = None) -> None:
        self.path = Path(path).absolute()
        self.force, self.kind = force, kind
        self.replaceable = replaceable
        self.lock = OutputLock(self.path)
        self.staging: Path | None = None

    def check(self) -> None:
        """What can be known before the work: the path is free (or replaceable) and writable."""
        path = self.path
        if path.exists() or path.is_symlink():
            if not self.force:
                raise OutputError(f"{path} exists; pass --force to replace it")
            is_folder = path.is_dir() and not path.is_symlink()
            if is_folder != (self.kind == "folder"):
                raise OutputError(f"{path} is {'a folder' if is_folder else 'not a folder'}; refusing to replace it "
                                  f"with {'a folder' if self.kind == 'folder' else 'a file'}")
            why = self.replaceable(path) if self.replaceable else None
            if why:
                raise OutputError(f"{path} {why}; refusing to replace it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write {path}: {path.parent} is not writable")

    def __enter__(self) -> "Output":
        self.check()
        self.lock.__enter__()
        try:
            reap(self.path.parent, self.path.name)
            self.check()  # again under the lock: a process that just finished may have written it
            with write_errors(self.path):
                self.staging = make_temp_dir(self.path)
                publish_mode(self.staging)
                self.work.mkdir()
                if self.kind == "folder":
                    self.result.mkdir()
        except BaseException:
            self._cleanup()
            raise
        return self

    @property
    def work(self) -> Path:
        assert self.staging is not None
        return self.staging / "work"

    @property
    def result(self) -> Path:
        assert self.staging is not None
        return self.staging / ("result" if self.kind == "folder" else f"result{self.path.suffix}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                with write_errors(self.path):
                    self._commit()
        finally:
            self._cleanup()

    def _commit(self) -> None:
        result = self.result
        shutil.rmtree(self.work, ignore_errors=True)
        publish_mode(result)
        commit_point(f"commit {self.path.name}")
        if self.kind == "folder" and self.path.is_dir() and not self.path.is_symlink():
            if not _exchange(result, self.path):  # the old output goes into staging, then the new one in
                assert self.staging is not None
                os.replace(self.path, self.staging / "old")
                commit_point(f"commit {self.path.name} (second rename)")
                os.replace(result, self.path)
        else:
            os.replace(result, self.path)

    def _cleanup(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        self.lock.__exit__()
