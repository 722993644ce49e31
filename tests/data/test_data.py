"""Datasets: image folders, CSV/JSONL text, deterministic stratified splits, explicit val sets."""

import json

import numpy as np
import pytest
from PIL import Image

from edgeft.data import load_dataset, sample_data_path
from edgeft.data.image_folder import read_image_folder
from edgeft.data.text_table import read_text_table
from edgeft.errors import DataError
from edgeft.runtime.preprocess import ImagePreprocessing, crop_image, load_image, normalize
from tests.conftest import write_image_folder, write_text_csv


def test_bundled_samples_have_enough_classes_and_items():
    images = read_image_folder(sample_data_path("image"))
    texts = read_text_table(sample_data_path("text"))
    assert len(images.classes) >= 3 and min(images.class_counts().values()) >= 20
    assert len(texts.classes) >= 3 and len(texts) >= 200


def test_split_is_stratified_and_deterministic(text_csv):
    a = load_dataset(text_csv, val_split=0.25, seed=1)
    b = load_dataset(text_csv, val_split=0.25, seed=1)
    c = load_dataset(text_csv, val_split=0.25, seed=2)
    assert a.train.items == b.train.items and a.val.items == b.val.items
    assert a.val.items != c.val.items
    assert set(a.val.class_counts().values()) == {3}  # 12 per class * 0.25
    assert not set(a.train.items) & set(a.val.items)


def test_explicit_val_folder(tmp_path):
    write_image_folder(tmp_path / "d" / "train")
    write_image_folder(tmp_path / "d" / "val", per_class=2)
    splits = load_dataset(tmp_path / "d")
    assert len(splits.train) == 18 and len(splits.val) == 6
    assert "explicit" in splits.source


def test_explicit_val_text_files(tmp_path):
    write_text_csv(tmp_path / "train.csv")
    write_text_csv(tmp_path / "val.csv", per_class=2)
    splits = load_dataset(tmp_path)
    assert len(splits.val) == 6 and splits.classes == ("food", "sports", "weather")


def test_jsonl_with_custom_columns(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"body": f"text {i}", "topic": "ab"[i % 2]}) for i in range(8)))
    data = read_text_table(path, text_column="body", label_column="topic")
    assert data.classes == ("a", "b") and len(data) == 8


def test_missing_label_column_names_the_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sentence,topic\nhello,a\n")
    with pytest.raises(DataError, match="no column 'text'; columns found: sentence, topic"):
        read_text_table(path)


def test_empty_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="no rows"):
        read_text_table(tmp_path / "e.csv")


def test_one_class_folder_is_an_error(tmp_path):
    write_image_folder(tmp_path / "d", classes=("red",))
    with pytest.raises(DataError, match="at least 2 classes"):
        read_image_folder(tmp_path / "d")


def test_corrupt_files_are_skipped_with_a_counted_warning(image_folder):
    (image_folder / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    (image_folder / "blue" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning, match="skipped 2 of 20 files"):
        data = read_image_folder(image_folder)
    assert len(data) == 18


def test_mostly_corrupt_folder_is_an_error(tmp_path):
    write_image_folder(tmp_path / "d", per_class=1)
    for cls in ("red", "green", "blue"):
        for i in range(2):
            (tmp_path / "d" / cls / f"bad{i}.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="6 of 9 files"):
        read_image_folder(tmp_path / "d")


def test_webp_and_exif_rotation(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255  # left half white
    image = Image.fromarray(pixels)
    image.save(tmp_path / "a.webp")
    assert load_image(tmp_path / "a.webp").size == (20, 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    image.save(tmp_path / "r.jpg", exif=exif)
    rotated = load_image(tmp_path / "r.jpg")
    assert rotated.size == (10, 20)  # width and height swapped by the EXIF transpose
    assert rotated.mode == "RGB"


def test_preprocessing_crop_and_normalise():
    spec = ImagePreprocessing()
    image = Image.fromarray(np.full((300, 400, 3), 255, np.uint8))
    crop = crop_image(image, spec)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    x = normalize(crop[None], spec)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert np.allclose(x, (255 - 127) / 128)
    assert spec.with_size(112).resize == 128
