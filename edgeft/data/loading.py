"""Find out what a data path holds and read it into train/val splits."""

from __future__ import annotations

from pathlib import Path

from edgeft.data.dataset import Dataset, DatasetSplits
from edgeft.data.image_folder import read_image_folder
from edgeft.data.split import stratified_split
from edgeft.data.text_table import TEXT_SUFFIXES, read_text_table
from edgeft.errors import DataError

_SAMPLES = Path(__file__).resolve().parent / "samples"


def sample_data_path(modality: str) -> Path:
    """The bundled sample data: an image folder (``image``) or a CSV file (``text``)."""
    paths = {"image": _SAMPLES / "shapes", "text": _SAMPLES / "topics.csv"}
    if modality not in paths:
        raise DataError(f"no sample data for modality {modality!r}")
    return paths[modality]


def _explicit_text_pair(folder: Path) -> tuple[Path, Path] | None:
    for suffix in TEXT_SUFFIXES:
        train, val = folder / f"train{suffix}", folder / f"val{suffix}"
        if train.is_file() and val.is_file():
            return train, val
    return None


def _read(path: Path, text_column: str, label_column: str, classes=None) -> Dataset:
    if path.is_dir():
        return read_image_folder(path, classes=classes)
    return read_text_table(path, text_column, label_column, classes=classes)


def load_dataset(
    path: str | Path,
    *,
    val_split: float = 0.2,
    seed: int = 0,
    val_path: str | Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
) -> DatasetSplits:
    """Read ``path`` (an image folder, a CSV/JSONL file, or a folder with train/val parts).

    An explicit validation set (``val_path``, a ``train/`` + ``val/`` image folder, or
    ``train.csv`` + ``val.csv``) is used as given; otherwise the data is split stratified.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if val_path is None and path.is_dir():
        if (path / "train").is_dir() and (path / "val").is_dir():
            path, val_path = path / "train", path / "val"
        elif (pair := _explicit_text_pair(path)) is not None:
            path, val_path = pair
    if val_path is not None:
        val_path = Path(val_path)
        if not val_path.exists():
            raise DataError(f"validation data path {val_path} does not exist")
        train = _read(path, text_column, label_column)
        if val_path.is_dir() != path.is_dir():
            raise DataError(f"validation data {val_path} is not of the same kind as {path}")
        val = _read(val_path, text_column, label_column, classes=train.classes)
        return DatasetSplits(train, val, source=f"explicit validation data {val_path}")
    return stratified_split(_read(path, text_column, label_column), val_split, seed)
