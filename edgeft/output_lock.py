"""One writer per output: an exclusive, non-blocking ``fcntl.flock`` on ``.NAME.edgeft-lock``
beside it (stdlib only). ``edgeft.outputs`` uses it for every output it writes."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from edgeft.errors import OutputError

LOCK_FILE = re.compile(r"^\.(?P<name>.+)\.edgeft-lock$")


class OutputLock:
    """An exclusive, non-blocking lock on an output, held in ``.NAME.edgeft-lock`` beside it.

    The holder removes the file when it is done. A process that locked a file just removed
    sees that the path no longer leads to its file and tries again."""

    def __init__(self, path: Path) -> None:
        self.path = path.parent / f".{path.name}.edgeft-lock"
        self.output = path
        self.fd: int | None = None

    def __enter__(self) -> "OutputLock":
        try:
            import fcntl
        except ImportError:  # no flock here (Windows): one writer is the user's to keep
            return self
        for _ in range(10):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise OutputError(f"cannot write in {self.path.parent}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputError(f"another edgeft process (pid {holder}) is writing {self.output}; "
                                  "wait for it to finish or choose another output") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                self.fd = fd
                return self
            os.close(fd)  # the holder removed it between our open and our lock: take the new one
        raise OutputError(f"cannot lock {self.output}: its lock file keeps changing")

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = None


def unlock_stale(path: Path) -> bool:
    """Remove a lock file that no process holds (its holder was killed); False if it is held."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDWR)
    except (ImportError, OSError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.close(fd)
    return True
