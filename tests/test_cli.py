"""The CLI as a user meets it: --help, --json, and one clear line (exit 2) for every bad input."""

import json

import pytest
from click.testing import CliRunner

from edgeft.cli import main
from edgeft.data import sample_data_path
from tests.conftest import write_image_folder


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_clean_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def _commands(group=main, path=()):
    import click

    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


ALL_COMMANDS = list(_commands())


def test_the_command_list_is_complete():
    assert {" ".join(c) for c in ALL_COMMANDS} >= {"backbones", "finetune", "export", "predict", "verify", "package",
                                                  "bench", "bench run", "bench compare", "doctor", "quickstart"}


@pytest.mark.parametrize("command", [(), *ALL_COMMANDS], ids=lambda c: " ".join(c) or "edgeft")
def test_every_command_has_help_and_json(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output
    summary = result.output.split("Options:")[0].strip().splitlines()
    assert len(summary) >= 3, result.output  # usage line, blank line, a sentence of what it does
    if command and command != ("bench",):  # bench is a group: its two commands carry --json
        assert "--json" in result.output, f"edgeft {' '.join(command)} has no --json"


def test_backbones_json_lists_offline_availability():
    rows = json.loads(run("backbones", "--json").output)
    assert {r["name"] for r in rows} == {"efficientnet_lite0", "minilm_l6"}
    assert all(r["offline"] for r in rows)


def test_backbone_groups():
    info = json.loads(run("backbones", "minilm_l6", "--json").output)
    assert [g["group"] for g in info["groups"]] == ["embeddings"] + [f"layer.{i}" for i in range(6)] + ["head"]


def test_missing_data_path(tmp_path):
    _assert_clean_error(run("finetune", "-b", "minilm_l6", "-d", tmp_path / "nope", "-o", tmp_path / "o"),
                        "does not exist")
    assert not (tmp_path / "o").exists()


def test_one_class_folder(tmp_path):
    write_image_folder(tmp_path / "d", classes=("red",))
    _assert_clean_error(run("finetune", "-b", "efficientnet_lite0", "-d", tmp_path / "d", "-o", tmp_path / "o"),
                        "at least 2 classes")
    assert not (tmp_path / "o").exists()


def test_empty_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    _assert_clean_error(run("finetune", "-b", "minilm_l6", "-d", tmp_path / "e.csv", "-o", tmp_path / "o"), "no rows")


def test_csv_without_label_column(tmp_path):
    (tmp_path / "d.csv").write_text("text,category\nhello,a\nbye,b\n")
    _assert_clean_error(run("finetune", "-b", "minilm_l6", "-d", tmp_path / "d.csv", "-o", tmp_path / "o"),
                        "no column 'label'", "columns found: text, category")


def test_unknown_backbone(tmp_path):
    _assert_clean_error(run("finetune", "-b", "efficientnet_lite", "-d", sample_data_path("image"), "-o", tmp_path / "o"),
                        "Did you mean 'efficientnet_lite0'", "Known: efficientnet_lite0, minilm_l6")


def test_freeze_beyond_the_blocks(tmp_path):
    _assert_clean_error(run("finetune", "-b", "minilm_l6", "-d", sample_data_path("text"), "-o", tmp_path / "o",
                            "--freeze", "8"), "has 7 groups")
    assert not (tmp_path / "o").exists()


def test_existing_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    _assert_clean_error(run("finetune", "-b", "minilm_l6", "-d", sample_data_path("text"), "-o", tmp_path / "o"),
                        "already exists")
    assert (tmp_path / "o" / "keep.txt").read_text() == "mine"


def test_wrong_modality(tmp_path):
    _assert_clean_error(run("finetune", "-b", "minilm_l6", "-d", sample_data_path("image"), "-o", tmp_path / "o"),
                        "image data but minilm_l6 is a text backbone")


def test_resume_without_a_run(tmp_path):
    _assert_clean_error(run("finetune", "--resume", "-o", tmp_path / "o"), "no run to resume")


def test_corrupt_images_warn_once_and_train(tmp_path):
    write_image_folder(tmp_path / "d")
    (tmp_path / "d" / "red" / "bad.jpg").write_bytes(b"junk")
    result = run("finetune", "-b", "efficientnet_lite0", "-d", tmp_path / "d", "-o", tmp_path / "o",
                 "--epochs", "1", "--image-size", "32", "--json")
    assert result.exit_code == 0, result.output
    assert "Warning: skipped 1 of 19 files" in result.output
    assert json.loads(result.output[result.output.index("{"):])["epochs_run"] == 1
