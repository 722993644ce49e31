"""Each size edgeft accepts from files it did not write, at its boundary: the limit itself is
accepted, one past it is refused in one line (``edgeft/limits.py`` decides them once)."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

from edgeft import limits
from edgeft.errors import EdgeftError
from edgeft.manifest import ManifestError, read_manifest
from edgeft.runtime import EdgeModel


def _manifest_with(bundle: Path, tmp_path: Path, **preprocessing) -> Path:
    copy = Path(shutil.copytree(bundle, tmp_path / "b"))
    data = json.loads((copy / "edgeft.json").read_text())
    data["preprocessing"].update(preprocessing)
    (copy / "edgeft.json").write_text(json.dumps(data))
    return copy


def _problem(bundle: Path) -> str:
    try:
        read_manifest(bundle)
    except ManifestError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("field, limit, others", [
    ("size", limits.MAX_CROP, {"resize": limits.MAX_CROP}),
    ("resize", limits.MAX_RESIZE, {}),
])
def test_image_preprocessing_sizes_at_their_limit(image_bundle, tmp_path, field, limit, others):
    assert limit == {"size": 2048, "resize": 4096}[field]  # the documented limits (README, docs/bundle-format.md)
    at = _manifest_with(image_bundle, tmp_path / "at", **{field: limit, **others})
    assert f"preprocessing.{field}" not in _problem(at)
    over = _manifest_with(image_bundle, tmp_path / "over", **{field: limit + 1, **others})
    assert f"preprocessing.{field}" in _problem(over)


def test_text_length_at_its_limit(text_bundle, tmp_path):
    model = EdgeModel.load(text_bundle)
    model.predict(["a" * limits.MAX_TEXT_CHARS])  # at the limit: classified (truncated to max_length)
    with pytest.raises(EdgeftError, match="over the limit"):
        model.predict(["a" * (limits.MAX_TEXT_CHARS + 1)])
    assert limits.MAX_TEXT_CHARS == 1_000_000


def _zip_with(path: Path, entries: int, sizes: tuple[int, int] | None = None) -> Path:
    """A zip of ``entries`` small files; ``sizes``: the first two entries' declared (uncompressed,
    compressed) sizes, patched into the central directory (no data of that size is written)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(entries):
            archive.writestr(f"f{i}.txt", b"x" * 64)
    if sizes is not None:
        raw = bytearray(path.read_bytes())
        at = 0
        for _ in range(2):
            at = raw.index(b"PK\x01\x02", at)
            struct.pack_into("<II", raw, at + 20, sizes[1], sizes[0])  # compressed, uncompressed size
            at += 4
        path.write_bytes(bytes(raw))
    return path


def _zip_error(path: Path) -> str:
    try:
        EdgeModel.load(path)
    except EdgeftError as exc:
        return str(exc)
    return ""


def test_zip_entries_at_their_limit(tmp_path):
    assert "entries; a bundle has a handful" not in _zip_error(_zip_with(tmp_path / "at.zip", limits.MAX_ZIP_ENTRIES))
    over = _zip_error(_zip_with(tmp_path / "over.zip", limits.MAX_ZIP_ENTRIES + 1))
    assert f"holds {limits.MAX_ZIP_ENTRIES + 1} entries" in over
    assert limits.MAX_ZIP_ENTRIES == 64


def test_zip_total_size_at_its_limit(tmp_path):
    """Two entries that claim half the limit each (at a ratio a zip bomb check lets through)."""
    half = limits.MAX_ZIP_BYTES // 2
    at = _zip_error(_zip_with(tmp_path / "at.zip", 2, (half - 32, half // 50)))
    assert "GB limit" not in at
    over = _zip_error(_zip_with(tmp_path / "over.zip", 2, (half + 1, half // 50)))
    assert "unpacks to 4.0 GB, over the 4 GB limit" in over
