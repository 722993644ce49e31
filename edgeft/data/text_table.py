"""Text datasets as CSV or JSONL files with a text column and a label column."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from edgeft.data.dataset import Dataset
from edgeft.errors import DataError

TEXT_SUFFIXES = (".csv", ".jsonl")


def _read_rows(path: Path) -> tuple[list[dict], list[str]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a BOM is not part of the first column
            reader = csv.DictReader(f)
            rows = list(reader)
            return rows, list(reader.fieldnames or [])
    rows = []
    with path.open(encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: each line must be a JSON object")
            rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return rows, columns


def read_text_table(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    classes: tuple[str, ...] | None = None,
) -> Dataset:
    """Read a CSV or JSONL file; labels are the label column's values as strings, sorted.

    ``classes`` fixes the class order (for a validation file that must match training).
    """
    path = Path(path)
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise DataError(f"{path}: text data must be .csv or .jsonl")
    try:
        rows, columns = _read_rows(path)
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path} has no rows")
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        raise DataError(
            f"{path} has no column {missing[0]!r}; columns found: {', '.join(columns) or '(none)'} "
            "(choose with --text-column / --label-column)"
        )
    texts: list[str] = []
    names: list[str] = []
    for i, row in enumerate(rows, 1):
        text, label = row.get(text_column), row.get(label_column)
        for value, column in ((text, text_column), (label, label_column)):
            if value is not None and not isinstance(value, (str, int, float)):
                raise DataError(f"{path}: row {i} has a {type(value).__name__} in {column!r}; "
                                "a text and a label must each be one string or number")
        if text is None or label is None or str(text).strip() == "" or str(label).strip() == "":
            raise DataError(f"{path}: row {i} has an empty {text_column!r} or {label_column!r}")
        texts.append(str(text))
        names.append(str(label).strip())
    if classes is None:
        classes = tuple(sorted(set(names)))
        if len(classes) < 2:
            raise DataError(f"{path} has {len(classes)} label value(s); classification needs at least 2")
    else:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise DataError(f"{path} has labels not in the training data: {', '.join(unknown)}")
    index = {c: i for i, c in enumerate(classes)}
    return Dataset(tuple(texts), tuple(index[n] for n in names), tuple(classes), "text")
