"""Writing a bundle folder atomically: built in a temporary sibling, renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from edgeft.errors import UsageError
from edgeft.manifest import MANIFEST


def check_destination(output: str | Path, force: bool) -> Path:
    """Fail before any work if ``output`` cannot become a bundle: it exists (without ``force``),
    it is something other than a bundle, or its folder cannot be written."""
    output = Path(output).absolute()
    if output.exists() or output.is_symlink():
        if not force:
            raise UsageError(f"{output} exists; pass --force to replace it")
        if not output.is_dir() or (any(output.iterdir()) and not (output / MANIFEST).is_file()):
            raise UsageError(f"{output} exists and is not an edgeft bundle; refusing to replace it")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {output.parent}: {exc.strerror or exc}") from None
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise UsageError(f"{output.parent} is not writable")
    return output


class BundleWriter:
    """``with BundleWriter(out, force) as folder: ...`` writes into ``folder``; on a clean exit
    the folder is renamed to ``out`` (replacing an old bundle), on an error it is removed."""

    def __init__(self, output: str | Path, force: bool = False) -> None:
        self.output = check_destination(output, force)
        self.force = force
        self.folder: Path | None = None

    def __enter__(self) -> Path:
        try:
            self.folder = Path(tempfile.mkdtemp(dir=self.output.parent, prefix=f".{self.output.name}.", suffix=".tmp"))
        except OSError as exc:
            raise UsageError(f"cannot write in {self.output.parent}: {exc.strerror or exc}") from None
        return self.folder

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self.folder is not None
        if kind is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        old = None
        if self.output.exists():
            old = self.output.parent / f".{self.output.name}.old-{os.getpid()}"
            os.replace(self.output, old)
        os.replace(self.folder, self.output)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
