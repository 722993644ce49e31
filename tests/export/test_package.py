"""`edgeft package`: app-ready folders and zips, ORT format, and the checks on the way back in."""

from __future__ import annotations

import json
import zipfile

import pytest
from click.testing import CliRunner

from edgeft.cli import main
from edgeft.runtime import EdgeModel
from edgeft.runtime.model import BundleError


@pytest.mark.parametrize("fixture", ["text_bundle", "image_bundle"])
def test_ort_package_reproduces_the_golden_outputs(fixture, tmp_path, request):
    bundle = request.getfixturevalue(fixture)
    result = CliRunner().invoke(main, ["package", str(bundle), "-o", str(tmp_path / "app"), "--format", "ort"])
    assert result.exit_code == 0, result.output
    app = tmp_path / "app"
    assert {"model.ort", "required_operators.config", "README.md", "edgeft.json", "golden.npz"} <= {p.name for p in app.iterdir()}
    assert not (app / "model.onnx").exists()
    assert "ai.onnx;" in (app / "required_operators.config").read_text()
    manifest = json.loads((app / "edgeft.json").read_text())
    assert manifest["files"]["model"] == "model.ort" and manifest["source"]["format"] == "ort"
    check = EdgeModel.load(app).check_golden()
    assert check.ok, check
    readme = (app / "README.md").read_text()
    assert "EdgeModel.load" in readme and manifest["inputs"][0]["name"] in readme


def test_zip_package_loads_and_predicts(text_bundle, tmp_path):
    out = tmp_path / "app.zip"
    assert CliRunner().invoke(main, ["package", str(text_bundle), "-o", str(out), "--zip"]).exit_code == 0
    names = zipfile.ZipFile(out).namelist()
    assert sorted(names) == ["README.md", "edgeft.json", "golden.npz", "model.onnx", "tokenizer.json"]
    result = CliRunner().invoke(main, ["predict", str(out), "the rain today was snow", "--json"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
    again = CliRunner().invoke(main, ["package", str(text_bundle), "-o", str(out), "--zip"])
    assert again.exit_code == 2 and "pass --force" in again.output


def _symlink_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)  # a symbolic link, as `zip --symlinks` stores it
    return info


@pytest.mark.parametrize("entry", ["../escaped.txt", "/abs/escaped.txt", "link"])
def test_zip_with_unsafe_entries_is_refused(text_bundle, tmp_path, monkeypatch, entry):
    """Nothing of an unsafe zip is extracted: not the bundle, not the entry."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        for path in text_bundle.iterdir():
            archive.write(path, path.name)
        if entry == "link":
            archive.writestr(_symlink_entry(entry, "/etc/passwd"), "/etc/passwd")
        else:
            archive.writestr(entry, "boo")
    with pytest.raises(BundleError, match=f"unsafe entry '{entry}'"):
        EdgeModel.load(evil)
    result = CliRunner().invoke(main, ["verify", str(evil)])
    assert result.exit_code == 2 and "unsafe entry" in result.output
    assert list((tmp_path / "tmp").iterdir()) == []  # refused before anything was unpacked


def test_a_package_that_fails_its_golden_check_is_not_kept(text_bundle, tmp_path, monkeypatch):
    from edgeft.runtime.golden import GoldenCheck

    def failing(self):  # noqa: ANN001
        return GoldenCheck(count=4, max_abs_diff=3.0, atol=1e-3, top1_agreement=0.5, provider="CPUExecutionProvider")

    monkeypatch.setattr(EdgeModel, "check_golden", failing)
    for args in (["-o", str(tmp_path / "app")], ["-o", str(tmp_path / "app.zip"), "--zip"]):
        result = CliRunner().invoke(main, ["package", str(text_bundle), *args])
        assert result.exit_code == 2 and "fails its golden check" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_a_broken_bundle_is_not_packaged(text_bundle, tmp_path):
    import shutil

    broken = shutil.copytree(text_bundle, tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["package", str(broken), "-o", str(tmp_path / "app")])
    assert result.exit_code == 2 and "sha256" in result.output
    assert not (tmp_path / "app").exists()


def test_package_json(image_bundle, tmp_path):
    result = CliRunner().invoke(main, ["package", str(image_bundle), "-o", str(tmp_path / "app"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"package": str(tmp_path / "app"), "format": "onnx", "zip": False, "app": False}
