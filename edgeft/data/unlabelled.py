"""Unlabelled samples (calibration data, inputs to time): any images under a folder, or texts."""

from __future__ import annotations

import warnings
from pathlib import Path

from edgeft.data.image_folder import _is_readable_image
from edgeft.data.text_table import TEXT_SUFFIXES, _read_rows
from edgeft.errors import DataError
from edgeft.runtime.preprocess import IMAGE_SUFFIXES

TEXT_FILE_SUFFIXES = (*TEXT_SUFFIXES, ".txt")


def read_samples(path: str | Path, text_column: str = "text") -> tuple[str, list[str]]:
    """``(modality, items)``: image paths found anywhere under a folder (or one image file),
    or the texts of a .txt file (one per line) or of a CSV/JSONL file's ``text_column``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            texts = [p.name for p in files if p.suffix.lower() in TEXT_FILE_SUFFIXES]
            hint = f" (it has text files: {', '.join(texts[:3])}; pass one of them)" if texts else ""
            raise DataError(f"{path} holds no images{hint}")
        readable = [str(p) for p in images if _is_readable_image(p)]
        if len(readable) < len(images):
            warnings.warn(f"skipped {len(images) - len(readable)} unreadable image(s) under {path}", stacklevel=2)
        if not readable:
            raise DataError(f"{path} holds no readable images")
        return "image", readable
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if not _is_readable_image(path):
            raise DataError(f"cannot read image {path}")
        return "image", [str(path)]
    if suffix not in TEXT_FILE_SUFFIXES:
        raise DataError(f"{path}: samples must be a folder of images, an image, or .txt/.csv/.jsonl text")
    try:
        if suffix == ".txt":
            texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        else:
            rows, columns = _read_rows(path)
            if text_column not in columns:
                raise DataError(f"{path} has no column {text_column!r}; columns found: {', '.join(columns) or '(none)'}")
            texts = [str(row.get(text_column) or "").strip() for row in rows]
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"{path} holds no text")
    return "text", texts
