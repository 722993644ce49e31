"""The user's data and outputs are safe: wrong inputs give one clear line, outputs are never
clobbered, shared by two writers, half-written on a full disk, or private to their maker."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeft.cli import main
from tests.conftest import write_text_csv

FAST = ["--epochs", "1", "--batch-size", "8", "--json"]


def run(args: list[str], **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def one_error_line(args: list, **kwargs) -> str:
    result = run(args, **kwargs)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


# -- wrong answers with exit 0 --------------------------------------------------------------------
def test_sixteen_bit_images_are_scaled_not_white(tmp_path, image_bundle):
    from edgeft.runtime.preprocess import load_image

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I;16")
    pixels = np.asarray(load_image(tmp_path / "grey16.png"))
    assert abs(pixels.mean() - ramp.mean() / 257) < 1 and pixels.min() == 0 and pixels.max() == 255
    # training reads images through the same function
    from edgeft.data.dataset import Dataset
    from edgeft.finetune.inputs import ImageItems
    from edgeft.runtime.preprocess import ImagePreprocessing

    items = ImageItems(Dataset((str(tmp_path / "grey16.png"),), (0,), ("a",), "image"), ImagePreprocessing(size=32, resize=32))
    pixels = items[0][0]["pixel_values"]
    assert float(pixels.std()) > 0.1 and float(pixels.max()) > float(pixels.min())


def test_a_jsonl_label_that_is_a_list_is_refused(tmp_path, tiny_bert):
    rows = [{"text": f"text {i}", "label": ["food"] if i == 3 else ["a", "b"][i % 2]} for i in range(12)]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    line = one_error_line(["finetune", "-b", tiny_bert, "-d", data, "-o", tmp_path / "run"])
    assert "row 4" in line and "list" in line


def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    from edgeft.data.text_table import read_text_table

    plain = write_text_csv(tmp_path / "plain.csv")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert read_text_table(bom).items == read_text_table(plain).items


def test_resume_refuses_options_that_would_change_the_run(tmp_path, tiny_bert, text_csv):
    out = tmp_path / "run"
    assert run(["finetune", "-b", tiny_bert, "-d", text_csv, "-o", out, *FAST]).exit_code == 0
    line = one_error_line(["finetune", "--resume", "-o", out, "--epochs", "3"])
    assert "--epochs 3" in line and "the run has 1" in line
    assert run(["finetune", "--resume", "-o", out, "--device", "cpu", "--json"]).exit_code == 0


def test_resume_repairs_a_corrupted_metrics_file(tmp_path, tiny_bert, text_csv):
    out = tmp_path / "run"
    assert run(["finetune", "-b", tiny_bert, "-d", text_csv, "-o", out, "--epochs", "2", "--batch-size", "8"]).exit_code == 0
    good = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text("{not json")
    result = run(["finetune", "--resume", "-o", out])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["epochs"] == good["epochs"]


@pytest.mark.parametrize("option", [["--weight-decay", "-1"], ["--lr", "nan"], ["--weight-decay", "inf"]])
def test_bad_hyperparameters_give_one_line(tmp_path, tiny_bert, text_csv, option):
    assert "must be" in one_error_line(["finetune", "-b", tiny_bert, "-d", text_csv, "-o", tmp_path / "r", *option])


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_huge_image_is_refused_before_it_is_decoded(tmp_path, image_bundle):
    (tmp_path / "huge.png").write_bytes(_png_header(20000, 20000))
    assert "over the limit" in one_error_line(["predict", image_bundle, tmp_path / "huge.png"])


@pytest.mark.parametrize("where", ["argument", "stdin", "file"])
def test_invalid_utf8_text_is_one_line_wherever_it_comes_from(text_bundle, tmp_path, where):
    raw = b"caf\xe9 au lait"
    if where == "argument":
        line = one_error_line(["predict", text_bundle, os.fsdecode(raw)])
    elif where == "stdin":
        line = one_error_line(["predict", text_bundle, "-"], input=raw)
    else:
        (tmp_path / "t.txt").write_bytes(raw)
        line = one_error_line(["predict", text_bundle, "--file", tmp_path / "t.txt"])
    assert "is not valid UTF-8 (byte 0xe9 at offset 3)" in line


# -- outputs: never clobbered, one writer, shareable ------------------------------------------------
def test_force_refuses_a_folder_with_files_that_are_not_its_bundle(text_run, text_bundle, tmp_path):
    out = Path(shutil.copytree(text_bundle, tmp_path / "bundle"))
    (out / "IMPORTANT.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub/data.csv").write_text("mine too")
    line = one_error_line(["export", text_run, "-o", out, "--force"])
    assert "IMPORTANT.txt" in line and "refusing" in line
    assert (out / "IMPORTANT.txt").read_text() == "mine" and (out / "sub/data.csv").is_file()


def test_force_refuses_a_foreign_sub_folder_alone(text_run, text_bundle, tmp_path):
    out = Path(shutil.copytree(text_bundle, tmp_path / "bundle"))
    (out / "photos").mkdir()  # an empty folder of the user's: no foreign file, still not the bundle's
    line = one_error_line(["export", text_run, "-o", out, "--force"])
    assert "photos" in line and "refusing" in line and (out / "photos").is_dir()


def test_package_zip_force_refuses_a_file_that_is_not_a_package(text_bundle, tmp_path):
    out = tmp_path / "notes.zip"
    out.write_text("my notes, not a zip")
    line = one_error_line(["package", str(text_bundle), "-o", str(out), "--zip", "--force"])
    assert "refusing" in line and out.read_text() == "my notes, not a zip", line


def test_force_swaps_the_bundle_in_one_step(text_run, text_bundle, tmp_path, monkeypatch):
    """`-o` holds a whole bundle after every rename or removal that --force makes: old, then new."""
    out = Path(shutil.copytree(text_bundle, tmp_path / "bundle"))
    old_sha = json.loads((out / "edgeft.json").read_text())["source"]["model_sha256"]
    whole = []

    def watched(real):  # noqa: ANN001, ANN202
        def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            result = real(*args, **kwargs)
            whole.append((out / "edgeft.json").is_file() and (out / "model.onnx").is_file())
            return result
        return call

    monkeypatch.setattr(os, "replace", watched(os.replace))
    monkeypatch.setattr(os, "rename", watched(os.rename))
    monkeypatch.setattr(shutil, "rmtree", watched(shutil.rmtree))
    result = CliRunner().invoke(main, ["export", str(text_run), "-o", str(out), "--force", "-q", "none"])
    assert result.exit_code == 0, result.output
    assert whole and all(whole), whole
    assert json.loads((out / "edgeft.json").read_text())["source"]["model_sha256"] != old_sha


def test_a_second_writer_of_the_same_output_fails_at_once(text_run, tmp_path):
    from edgeft.outputs import OutputLock

    out = tmp_path / "bundle"
    with OutputLock(out.absolute()):
        line = one_error_line(["export", text_run, "-o", out])
    assert "another edgeft process" in line and str(os.getpid()) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_second_finetune_into_the_same_run_fails_at_once(tmp_path, tiny_bert, text_csv):
    from edgeft.outputs import OutputLock

    out = tmp_path / "run"
    with OutputLock(out.absolute()):
        assert "another edgeft process" in one_error_line(["finetune", "-b", tiny_bert, "-d", text_csv, "-o", out])


def test_outputs_get_the_users_umask(text_run, text_bundle, tmp_path):
    previous = os.umask(0o022)
    try:
        assert run(["export", text_run, "-o", tmp_path / "bundle"]).exit_code == 0
        assert run(["package", text_bundle, "-o", tmp_path / "app.zip", "--zip"]).exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "bundle").stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "bundle").iterdir()} == {0o644}
    assert stat.S_IMODE((tmp_path / "app.zip").stat().st_mode) == 0o644


# -- full and read-only disks --------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (needs root and mount; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a small disk needs root and mount (tmpfs)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_gives_one_line_and_leaves_nothing(small_disk, text_run, text_bundle, tiny_bert, text_csv):
    ballast = small_disk / "ballast"
    ballast.write_bytes(bytes(19 * 2**20))  # 1 MB left: every output below needs more
    for args in (["export", text_run, "-o", small_disk / "bundle"],
                 ["package", text_bundle, "-o", small_disk / "app.zip", "--zip"],
                 ["finetune", "-b", tiny_bert, "-d", text_csv, "-o", small_disk / "run", "--freeze", "none", "--json"]):
        line = one_error_line(args)
        assert str(small_disk) in line and "needs about" in line and " MB" in line, line
        assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]


def test_a_disk_that_fills_during_the_write_leaves_nothing(small_disk, text_bundle, monkeypatch):
    """The pre-check passes (it is told so), then the real write hits ENOSPC."""
    import edgeft.export.package as package

    monkeypatch.setattr(package, "check_space", lambda *a: None)
    (small_disk / "ballast").write_bytes(bytes(int(19.3 * 2**20)))  # less than the bundle's 1.5 MB left
    line = one_error_line(["package", text_bundle, "-o", small_disk / "app"])
    assert "no space left" in line and str(small_disk / "app") in line
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]


def test_a_read_only_target_gives_one_line(small_disk, text_bundle):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    line = one_error_line(["package", text_bundle, "-o", small_disk / "app.zip", "--zip"])
    assert str(small_disk) in line and ("not writable" in line or "Read-only" in line), line
