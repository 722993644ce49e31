"""What is a run directory, answered in one place (RunDir): by the trainer, export and quickstart alike."""

from __future__ import annotations

import json

import pytest

from edgeft.errors import RunDirError
from edgeft.finetune import RunDir


def _folder(tmp_path, config):
    folder = tmp_path / "folder"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return folder


def test_a_hugging_face_folder_is_no_run(tmp_path):
    folder = _folder(tmp_path, {"model_type": "bert", "hidden_size": 8})
    assert RunDir.find(folder) is None
    with pytest.raises(RunDirError, match="is not an edgeft run config"):
        RunDir.open(folder)


@pytest.mark.parametrize("config", [None, ["a", "list"]])
def test_an_empty_folder_or_foreign_config_is_no_run(tmp_path, config):
    assert RunDir.find(_folder(tmp_path, config)) is None
    assert RunDir.find(tmp_path / "missing") is None


def test_an_unreadable_config_is_named_not_guessed(tmp_path):
    with pytest.raises(RunDirError, match="not valid JSON"):
        RunDir.find(_folder(tmp_path, "{not json"))


def test_a_run_config_is_a_run_and_its_defaults_are_the_configs(tmp_path):
    folder = _folder(tmp_path, {"format": "edgeft-run",
                                "finetune_config": {"backbone": "b", "data": "d.csv", "output": "o"}})
    run = RunDir.open(folder)
    assert RunDir.find(folder).path == folder
    config = run.finetune_config()
    assert (config.val_split, config.seed, config.text_column) == (0.2, 0, "text")  # FinetuneConfig's own defaults


def test_a_new_run_refuses_a_folder_with_files(tmp_path):
    folder = _folder(tmp_path, {"x": 1})
    with pytest.raises(RunDirError, match="already exists"):
        RunDir(folder).check_new()
    RunDir(tmp_path / "fresh").check_new()
