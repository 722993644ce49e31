"""Writing a bundle folder: locked, built beside its destination, swapped in by one rename
(``edgeft.outputs.Output``); ``--force`` replaces only a folder that holds nothing but a bundle."""

from __future__ import annotations

from pathlib import Path

from edgeft.manifest import GOLDEN, MANIFEST, ManifestError, read_manifest
from edgeft.outputs import Output

EXTRA_FILES = ("README.md", "doctor.md")  # written by package and by --quantize auto


def not_a_bundle(path: Path) -> str | None:
    """Why the folder ``path`` is not a bundle that ``--force`` may replace, or None when it is one:
    a readable manifest, and no file or folder the manifest does not account for."""
    if not any(path.iterdir()):
        return None
    try:
        manifest = read_manifest(path)
    except ManifestError:
        return "exists and is not an edgeft bundle"
    known = {MANIFEST, GOLDEN, *EXTRA_FILES, *manifest.files.values(), str(manifest.golden.get("file", GOLDEN))}
    foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()
                     if p.name not in known or not p.is_file() or p.is_symlink())
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        return f"holds files that are not part of its bundle ({shown})"
    return None


def BundleWriter(output: str | Path, force: bool = False) -> Output:  # noqa: N802 - reads like the class it was
    """``with BundleWriter(out, force) as o:`` write the bundle into ``o.result``, scratch into ``o.work``."""
    return Output(output, force, "folder", not_a_bundle)


def check_destination(output: str | Path, force: bool) -> Path:
    """Fail before any work if ``output`` cannot become a bundle."""
    writer = BundleWriter(output, force)
    writer.check()
    return writer.path
