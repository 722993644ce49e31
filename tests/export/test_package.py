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


def test_zip_with_unsafe_entries_is_refused(text_bundle, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        for path in text_bundle.iterdir():
            archive.write(path, path.name)
        archive.writestr("../escaped.txt", "boo")
    with pytest.raises(BundleError, match="unsafe entry '../escaped.txt'"):
        EdgeModel.load(evil)
    result = CliRunner().invoke(main, ["verify", str(evil)])
    assert result.exit_code == 2 and "unsafe entry" in result.output
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_a_broken_bundle_is_not_packaged(text_bundle, tmp_path):
    import shutil

    broken = shutil.copytree(text_bundle, tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["package", str(broken), "-o", str(tmp_path / "app")])
    assert result.exit_code == 2 and "sha256" in result.output
    assert not (tmp_path / "app").exists()
