"""`edgeft package --app` / `export --app`: a model an app calls with its own pixels or text, with
the bundle's preprocessing inside the graph, checked against the Python runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeft.cli import main
from edgeft.errors import UsageError
from edgeft.runtime import EdgeModel
from edgeft.runtime.preprocess import ImagePreprocessing, crop_image
from tests.conftest import has_package, needs_arm64

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the real photos (pip install scikit-image)")
PHOTOS = Path(skimage_data.__file__).parent
REAL_PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg"]


def photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(PHOTOS / name).convert("RGB"))


def package_app(bundle: Path, out: Path, *extra: str) -> Path:
    result = CliRunner().invoke(main, ["package", str(bundle), "-o", str(out), "--app", *extra])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def image_app(image_bundle, tmp_path_factory) -> Path:
    return package_app(image_bundle, tmp_path_factory.mktemp("app") / "app", "--format", "ort")


def _prelude(spec: ImagePreprocessing):
    """The app graph's preprocessing alone, as an onnxruntime session."""
    import onnxruntime as ort

    from edgeft.export.app_graph import preprocessing_model

    return ort.InferenceSession(preprocessing_model(spec).SerializeToString(), providers=["CPUExecutionProvider"])


# Measured on these photos (benchmarks/app_model.py): bicubic <= 1 level in <= 0.1% of values,
# bilinear <= 1 level in <= 2.4%, nearest picks a neighbouring pixel in <= 0.5%.
@pytest.mark.parametrize("interpolation, max_level, max_fraction",
                         [("bicubic", 1, 0.002), ("bilinear", 1, 0.03), ("nearest", 255, 0.006)])
def test_the_graph_resizes_real_photos_as_pillow_does(interpolation, max_level, max_fraction):
    spec = ImagePreprocessing(interpolation=interpolation)
    session = _prelude(spec)
    for name in REAL_PHOTOS:
        pixels = photo(name)
        for image in (pixels, np.asarray(Image.fromarray(pixels).resize((300, 225), Image.Resampling.BICUBIC))):
            want = crop_image(Image.fromarray(image), spec).astype(np.float32)
            got = session.run(None, {"pixels": image})[0][0].transpose(1, 2, 0) * np.float32(128) + np.float32(127)
            diff = np.abs(np.rint(got) - want)
            assert diff.max() <= max_level and (diff > 0).mean() <= max_fraction, (name, image.shape, diff.max(), (diff > 0).mean())


def test_app_package_runs_on_raw_pixels_and_agrees_with_the_python_runtime(image_bundle, image_app):
    manifest = json.loads((image_app / "edgeft.json").read_text())
    assert manifest["format_version"] == 2 and manifest["app"]["input"] == "pixels"
    assert manifest["inputs"] == [{"name": "pixels", "dtype": "uint8", "shape": ["height", "width", 3]}]
    assert [o["name"] for o in manifest["outputs"]] == ["logits", "probabilities", "top_k_scores", "top_k_indices"]
    assert manifest["app"]["parity"]["top1_agreement"] == 1.0
    assert manifest["app"]["parity"]["max_abs_diff"] <= manifest["golden"]["atol"]
    # standard operators only: the reduced ORT Mobile build runs it without custom operator libraries
    domains = {line.split(";")[0] for line in (image_app / "required_operators.config").read_text().splitlines()
               if line and not line.startswith("#")}
    assert domains <= {"ai.onnx", "com.microsoft"}, domains
    ops = (image_app / "required_operators.config").read_text()
    assert all(op in ops for op in ("Resize", "Slice", "Softmax", "TopK"))

    bare, app = EdgeModel.load(image_bundle), EdgeModel.load(image_app)
    atol = manifest["golden"]["atol"]
    for name in REAL_PHOTOS[:3]:
        want = bare.predict([photo(name)], top_k=3, return_logits=True)[0]
        got = app.predict([photo(name)], top_k=3, return_logits=True)[0]
        assert got.label == want.label and np.abs(np.subtract(got.logits, want.logits)).max() <= atol
        outputs = app.session.run(None, {"pixels": photo(name)})
        assert outputs[3][0].tolist() == np.argsort(-outputs[1][0], kind="stable")[:len(outputs[3][0])].tolist()
    assert CliRunner().invoke(main, ["verify", str(image_app)]).exit_code == 0
    readme = (image_app / "README.md").read_text()
    assert "```js" in readme and "```kotlin" in readme and "```swift" in readme and "not run" in readme


@pytest.mark.parametrize("pixels, message", [
    (np.zeros((40, 30, 4), np.uint8), "drop the alpha channel"),
    (np.zeros((40, 30), np.uint8), "grayscale"),
    (np.zeros((40, 30, 1), np.uint8), "grayscale"),
    (np.zeros((0, 30, 3), np.uint8), "empty"),
    (np.zeros((40, 30, 3), np.float32), "uint8"),
    (np.zeros((1, 40_000, 3), np.uint8), "aspect ratio"),
])
def test_input_an_app_model_cannot_take_is_refused_clearly(image_app, pixels, message):
    with pytest.raises(UsageError, match=message):
        EdgeModel.load(image_app).predict([pixels])


def test_the_golden_check_fails_when_the_app_graph_resizes_differently(image_bundle, tmp_path, monkeypatch):
    """The parity check at packaging bites: the ONNX default cubic (a=-0.75) is not Pillow's."""
    import edgeft.export.app_graph as app_graph

    monkeypatch.setitem(app_graph._RESIZE, "bicubic", {**app_graph._RESIZE["bicubic"], "cubic_coeff_a": -0.75})
    result = CliRunner().invoke(main, ["package", str(image_bundle), "-o", str(tmp_path / "app"), "--app"])
    assert result.exit_code == 1 and "differs from the Python runtime" in result.output
    assert not (tmp_path / "app").exists()


@pytest.fixture(scope="module")
def image_int8_bundle(image_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "bundle"
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(out), "-q", "static"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("kind, levels", [("float", 1.0), ("int8", 24.0)])
def test_an_app_graph_that_normalises_wrongly_is_refused(kind, levels, request, tmp_path, monkeypatch):
    """The tolerance is the bundle's, not one the app builder may widen: a float graph whose mean is
    one level off (1/255 of the range) is refused, and a quantized bundle is checked as well."""
    from dataclasses import replace

    import edgeft.export.app_bundle as app_bundle

    bundle = request.getfixturevalue("image_bundle" if kind == "float" else "image_int8_bundle")
    build = app_bundle.add_app_graph
    monkeypatch.setattr(app_bundle, "add_app_graph", lambda model, spec, *a: build(
        model, replace(spec, mean=tuple(m + levels for m in spec.mean)), *a))
    result = CliRunner().invoke(main, ["package", str(bundle), "-o", str(tmp_path / "app"), "--app"])
    assert result.exit_code == 1 and "differs from the Python runtime" in result.output, result.output
    assert not (tmp_path / "app").exists()


def test_channels_with_their_own_mean_and_std_keep_their_order(tmp_path):
    """ImageNet's per-channel mean and std, on a graph that returns each channel's mean: the app
    graph's normalised RGB equals the runtime's, channel by channel (an R/B swap would show)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edgeft.export.app_graph import add_app_graph
    from edgeft.runtime.preprocess import normalize

    spec = ImagePreprocessing(size=32, resize=36, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    graph = helper.make_graph([helper.make_node("ReduceMean", ["pixel_values", "axes"], ["logits"], keepdims=0)], "g",
                              [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
                              [onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    add_app_graph(model, spec, 3, 3)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = np.zeros((40, 50, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 250, 120, 10
    got = session.run(["logits"], {"pixels": pixels})[0][0]
    want = normalize(crop_image(Image.fromarray(pixels), spec)[None], spec).mean((0, 2, 3))
    assert np.allclose(got, want, atol=1e-4), (got, want)
    assert got[0] > 2 and got[2] < -1.5  # red bright, blue dark: the channels are where they belong


def test_export_app_writes_an_app_bundle(image_run, tmp_path):
    out = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(out), "--app", "--quantize", "dynamic"])
    assert result.exit_code == 0, result.output
    model = EdgeModel.load(out)
    assert model.manifest.app["input"] == "pixels" and model.manifest.quantization["mode"] == "dynamic"
    assert model.check_golden().ok
    again = CliRunner().invoke(main, ["package", str(out), "-o", str(tmp_path / "twice"), "--app"])
    assert again.exit_code == 2 and "already an app bundle" in again.output


@pytest.mark.skipif(not has_package("onnxruntime_extensions"), reason="onnxruntime-extensions is not installed")
def test_text_app_tokenizes_inside_the_graph(text_bundle, tmp_path):
    app = package_app(text_bundle, tmp_path / "app", "--format", "ort")
    manifest = json.loads((app / "edgeft.json").read_text())
    assert manifest["app"]["custom_ops"] == "onnxruntime-extensions" and not (app / "tokenizer.json").exists()
    assert "ai.onnx.contrib;1;BertTokenizer" in (app / "required_operators.config").read_text()
    assert "onnxruntime-extensions-android" in (app / "README.md").read_text()
    texts = ["the rain today was snow", "The match ended in a DRAW, after extra time!", "x " * 400]
    bare, packaged = EdgeModel.load(text_bundle), EdgeModel.load(app)
    for text in texts:  # one at a time, as the app model runs: dynamic INT8 ranges span a padded batch
        want, got = bare.predict([text], return_logits=True)[0], packaged.predict([text], return_logits=True)[0]
        assert got.label == want.label and np.abs(np.subtract(got.logits, want.logits)).max() <= 1e-4
    assert packaged.check_golden().ok


@pytest.mark.arm
@needs_arm64
def test_app_model_on_emulated_arm64(image_app):
    """The app model on the aarch64 onnxruntime: its outputs against the Python runtime's on x86."""
    from edgeft.bench import BenchConfig, run_bench

    report = run_bench(BenchConfig((str(image_app),), target="qemu-arm64", runs=1, rounds=1, warmup=0))
    golden = report["golden"][0]
    assert golden["within_tolerance"] and golden["top1_agreement"] == 1.0, golden
