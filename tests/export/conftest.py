"""Fine-tune runs to export, made once per session: a tiny BERT on texts, Lite0 on images."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeft.finetune import FinetuneConfig, finetune
from tests.conftest import write_image_folder, write_text_csv


@pytest.fixture(scope="session")
def text_run(tmp_path_factory, tiny_bert) -> Path:
    root = tmp_path_factory.mktemp("text-run")
    data = write_text_csv(root / "texts.csv", per_class=16)
    finetune(FinetuneConfig(backbone=str(tiny_bert), data=str(data), output=str(root / "run"), epochs=3,
                            batch_size=8, lr=1e-2, patience=0))
    return root / "run"


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("image-run")
    data = write_image_folder(root / "images", per_class=8)
    finetune(FinetuneConfig(backbone="efficientnet_lite0", data=str(data), output=str(root / "run"), epochs=3,
                            batch_size=8, image_size=64, lr=1e-2, patience=0))
    return root / "run"
