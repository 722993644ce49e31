"""Exports of the real backbones: ImageNet Lite0 on a real photograph, through plain onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageOps

from edgeft.backbones import load_backbone
from edgeft.cli import main
from edgeft.runtime.preprocess import crop_image, load_image, normalize

pytestmark = pytest.mark.slow
PLAIN_CHECK = Path(__file__).with_name("plain_check.py")


@pytest.fixture(scope="module")
def photo() -> Path:
    cbook = pytest.importorskip("matplotlib.cbook")
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def calibration(photo, tmp_path_factory) -> Path:
    """A small calibration set: crops and mirror images of the photograph."""
    folder = tmp_path_factory.mktemp("calibration")
    image = Image.open(photo).convert("RGB")
    w, h = image.size
    for i, box in enumerate([(0, 0, w, h), (0, 0, w * 3 // 4, h * 3 // 4), (w // 4, h // 4, w, h),
                             (0, h // 4, w * 3 // 4, h), (w // 8, 0, w, h * 7 // 8)]):
        crop = image.crop(box)
        crop.save(folder / f"crop{i}.jpg")
        ImageOps.mirror(crop).save(folder / f"crop{i}-mirror.jpg")
    return folder


def _plain_top5(bundle: Path, photo: Path) -> dict:
    out = subprocess.run([sys.executable, str(PLAIN_CHECK), str(bundle), str(photo)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@torch.no_grad()
def _torch_logits(paths: list[Path]) -> np.ndarray:
    model = load_backbone("efficientnet_lite0").eval()
    x = normalize(np.stack([crop_image(load_image(p), model.preprocessing) for p in paths]), model.preprocessing)
    return model(pixel_values=torch.from_numpy(x)).numpy()


def test_imagenet_lite0_float_and_static_agree_with_pytorch_on_a_photograph(photo, calibration, tmp_path, avx2_host):
    for name, args in (("float", []), ("static", ["-q", "static", "--calibration-data", str(calibration)])):
        result = CliRunner().invoke(main, ["export", "efficientnet_lite0", "-o", str(tmp_path / name), *args])
        assert result.exit_code == 0, result.output
    reference = _torch_logits([photo])[0]
    exported = _plain_top5(tmp_path / "float", photo)
    assert not exported["edgeft_imported"]
    assert exported["top5"][0] == int(reference.argmax())
    assert exported["labels"][0] == "academic gown"
    assert np.allclose(exported["logits"], reference[exported["top5"]], atol=1e-4)

    # INT8 moves logits by up to a few tenths; the photograph's centre crop is a near tie (academic
    # gown 7.63 vs mortarboard 7.49), so the INT8 check uses the views whose top-1 wins by a margin
    views = sorted(calibration.iterdir())
    reference = _torch_logits(views)
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = [v for v, (second, first) in zip(views, top2, strict=True) if first - second > 0.5]
    assert clear
    for view in clear:
        assert _plain_top5(tmp_path / "static", view)["top5"][0] == int(_torch_logits([view])[0].argmax()), view
    manifest = json.loads((tmp_path / "static" / "edgeft.json").read_text())
    assert manifest["quantization"]["mode"] == "static"
    q = manifest["quantization"]  # exported as for an AVX2 CPU without VNNI: never int8 weights that saturate
    assert q["reduce_range"] or q["weight_type"] == "uint8", q["name"]
    print({a["recipe"]: a["top1_agreement"] for a in manifest["quantization"]["attempts"]})


def test_auto_on_imagenet_lite0_never_keeps_the_saturating_recipe(photo, calibration, tmp_path, monkeypatch,
                                                                   avx2_host):
    """`--quantize auto` with unlabelled photographs: the kept variant agrees with PyTorch on the top-1
    of every view of the photograph (centre crop included), and the report says why the default
    u8s8 recipe was not kept on this CPU."""
    monkeypatch.setenv("EDGEFT_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["export", "efficientnet_lite0", "-o", str(tmp_path / "auto"), "-q", "auto",
                                       "--calibration-data", str(calibration)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "auto" / "doctor.json").read_text())
    assert "the figure is noise below 32 samples" in result.output  # 10 unlabelled views judge it: said so
    assert "the figure is noise" in report["warnings"][-1] and "## Warnings" in (tmp_path / "auto" / "doctor.md").read_text()
    chosen = next(c for c in report["candidates"] if c["chosen"])
    assert chosen["status"] == "try"
    default = next(c for c in report["candidates"] if c["recipe"] == "static u8s8 per-channel minmax")
    assert default["status"] == "measure-only" and not default["chosen"]
    assert "saturation" in default["verdict"] and "never kept" in default["verdict"]
    assert "static u8s8 per-channel minmax" in (tmp_path / "auto" / "doctor.md").read_text()
    views = sorted(calibration.iterdir()) + [photo]
    reference = _torch_logits(views)
    for view, expected in zip(views, reference, strict=True):
        assert _plain_top5(tmp_path / "auto", view)["top5"][0] == int(expected.argmax()), (view, chosen["recipe"])
