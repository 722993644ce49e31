"""An image folder: one subfolder per class, images read with Pillow."""

from __future__ import annotations

import warnings
from pathlib import Path

from edgeft import limits
from edgeft.data.dataset import Dataset
from edgeft.errors import DataError
from edgeft.runtime.preprocess import IMAGE_SUFFIXES


def _is_readable_image(path: Path) -> bool:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = limits.MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as im:
            if im.width * im.height > limits.MAX_IMAGE_PIXELS:
                return False  # not decoded: over the size limit
            im.load()
        return True
    except Exception:  # any decoder failure means: not a usable image
        return False


def read_image_folder(root: str | Path, classes: tuple[str, ...] | None = None) -> Dataset:
    """Read ``root/<class>/<image>``; unreadable or non-image files are skipped with one warning.

    ``classes`` fixes the class order (for a validation folder that must match training).
    More than half the files unreadable is an error.
    """
    root = Path(root)
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = tuple(found)
        if len(classes) < 2:
            raise DataError(
                f"{root} has {len(classes)} class folder(s); an image dataset needs one subfolder "
                "per class and at least 2 classes"
            )
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataError(f"{root} has class folders not in the training data: {', '.join(extra)}")
    items: list[str] = []
    labels: list[int] = []
    skipped: list[Path] = []
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        for path in files:
            if path.suffix.lower() in IMAGE_SUFFIXES and _is_readable_image(path):
                items.append(str(path))
                labels.append(label)
            else:
                skipped.append(path)
    total = len(items) + len(skipped)
    if total == 0:
        raise DataError(f"{root} holds no files in its class folders")
    if len(skipped) * 2 > total:
        raise DataError(
            f"{len(skipped)} of {total} files in {root} are not readable images "
            f"(first: {skipped[0]}); supported: {', '.join(IMAGE_SUFFIXES)}"
        )
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} of {total} files in {root} that are not readable images "
            f"(first: {skipped[0].relative_to(root)})",
            stacklevel=2,
        )
    return Dataset(tuple(items), tuple(labels), tuple(classes), "image")
