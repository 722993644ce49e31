"""Kill edgeft at every commit point of finetune, export and package, and check what is left:
the output is absent, the old one, or complete and verified; the next run reaps the debris; and
``--resume`` gives the same per-epoch metrics as a run that was never interrupted.

Kills are real SIGKILLs, sent by edgeft itself just before the Nth rename that commits an output
(``EDGEFT_FAULT_KILL_AT``, see ``edgeft.outputs``), so no cleanup code runs. One more test does
the same from outside with strace where it is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeft.finetune.run_dir import weights_epoch
from tests.conftest import write_text_csv

FINETUNE = ["--epochs", "2", "--freeze", "none", "--no-cache-features", "--batch-size", "8"]


def edgeft(*args: str, fault_at: int | None = None, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if fault_at is not None:
        env["EDGEFT_FAULT_KILL_AT"] = str(fault_at)
    if log is not None:
        env["EDGEFT_FAULT_LOG"] = str(log)
    return subprocess.run([sys.executable, "-m", "edgeft", *args], capture_output=True, text=True, env=env,
                          timeout=600, **kwargs)


def commit_points(*args: str, tmp: Path) -> list[str]:
    """The commit points of one uninterrupted run, in order."""
    log = tmp / "commits.log"
    result = edgeft(*args, log=log)
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines()


def debris(*folders: Path) -> list[str]:
    return sorted(p.name for folder in folders if folder.is_dir() for p in folder.iterdir() if ".edgeft-" in p.name)


def epochs(run: Path) -> list[dict]:
    keep = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr")
    return [{k: e[k] for k in keep} for e in json.loads((run / "metrics.json").read_text())["epochs"]]


def test_finetune_killed_at_every_commit_point_resumes_to_the_same_metrics(tiny_bert, tmp_path):
    data = write_text_csv(tmp_path / "texts.csv", per_class=8)
    args = ["finetune", "-b", str(tiny_bert), "-d", str(data), *FINETUNE]
    points = commit_points(*args, "-o", str(tmp_path / "reference"), tmp=tmp_path)
    reference = epochs(tmp_path / "reference")
    assert len(points) >= 6 and any(p.startswith("create") for p in points), points
    for n, point in enumerate(points, 1):
        run = tmp_path / f"killed-{n}"
        killed = edgeft(*args, "-o", str(run), fault_at=n)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        if not run.exists():  # killed before the run folder appeared: nothing to resume, start again
            assert n == 1 or points[n - 1].startswith(("write config", "write tokenizer", "create")), point
            again = edgeft(*args, "-o", str(run))
        else:
            assert (run / "config.json").is_file(), point
            again = edgeft("finetune", "--resume", "-o", str(run))
        assert again.returncode == 0, (point, again.stderr[-2000:])
        assert epochs(run) == reference, f"killed before commit {n} ({point}): metrics differ after --resume"
        assert json.loads((run / "metrics.json").read_text())["best_epoch"] == \
            json.loads((tmp_path / "reference/metrics.json").read_text())["best_epoch"]
        assert debris(tmp_path, run, run / "checkpoint") == [], point
        best = json.loads((run / "metrics.json").read_text())["best_epoch"]
        assert weights_epoch(run / "model.safetensors") == best, f"{point}: model.safetensors is not the best epoch"


@pytest.mark.parametrize("force", [False, True], ids=["new", "--force over the old"])
def test_export_killed_at_every_commit_point_leaves_the_old_bundle_or_the_new(text_run, text_bundle, tmp_path, force):
    out = tmp_path / "bundle"
    args = ["export", str(text_run), "-o", str(out), "--quantize", "dynamic"] + (["--force"] if force else [])
    old_sha = json.loads((text_bundle / "edgeft.json").read_text())["source"]["model_sha256"]

    def fresh() -> None:
        shutil.rmtree(out, ignore_errors=True)
        if force:
            shutil.copytree(text_bundle, out)

    fresh()
    points = commit_points(*args, tmp=tmp_path)
    assert points and all(p.startswith("commit bundle") for p in points), points
    for n, point in enumerate(points, 1):
        fresh()
        killed = edgeft(*args, fault_at=n)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        if force:
            assert json.loads((out / "edgeft.json").read_text())["source"]["model_sha256"] == old_sha
            assert edgeft("verify", str(out)).returncode == 0
        else:
            assert not out.exists()
        assert debris(tmp_path), "the killed export's temporary folder should be there for the next run to reap"
        again = edgeft(*args, *(["--force"] if not force else []))
        assert again.returncode == 0, again.stderr[-2000:]
        assert edgeft("verify", str(out)).returncode == 0
        assert debris(tmp_path) == []


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_package_killed_at_its_commit_leaves_nothing_or_the_old_package(text_bundle, tmp_path, as_zip):
    out = tmp_path / ("app.zip" if as_zip else "app")
    args = ["package", str(text_bundle), "-o", str(out), "--force"] + (["--zip"] if as_zip else [])
    points = commit_points(*args, tmp=tmp_path)
    assert points == ["commit app.zip" if as_zip else "commit app"]
    before = out.stat().st_mtime_ns
    killed = edgeft(*args, fault_at=1)
    assert killed.returncode == -signal.SIGKILL
    assert out.stat().st_mtime_ns == before and edgeft("verify", str(out)).returncode == 0
    assert debris(tmp_path)
    assert edgeft(*args).returncode == 0 and debris(tmp_path) == []


def test_the_fallback_replace_is_recovered_by_the_next_run(tmp_path):
    """Where renameat2 cannot exchange, a kill between the fallback's two renames leaves the old
    output in the temporary folder; the next run on that output puts it back first."""
    script = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from edgeft import outputs
outputs._exchange = lambda a, b: False
with outputs.Output(Path(sys.argv[1]), force=True) as out:
    (out.result / "new.txt").write_text("new")
"""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    env = {**os.environ, "EDGEFT_FAULT_KILL_AT": "2"}
    killed = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    from edgeft import outputs

    outputs.reap(tmp_path, "out")
    assert (out / "old.txt").read_text() == "old" and debris(tmp_path) == []


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_the_reported_kill_between_checkpoint_and_state_resumes_exactly(tiny_bert, tmp_path):
    """The issue's reproduction, from outside: strace kills finetune at its 5th rename, the one after
    the first epoch's checkpoint (config, tokenizer, run folder, checkpoint, then metrics.json)."""
    data = write_text_csv(tmp_path / "texts.csv", per_class=8)
    args = ["finetune", "-b", str(tiny_bert), "-d", str(data), *FINETUNE]
    assert edgeft(*args, "-o", str(tmp_path / "reference")).returncode == 0
    killed = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename",
                             "-e", "inject=rename:signal=SIGKILL:when=5", sys.executable, "-m", "edgeft", *args,
                             "-o", str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert killed.returncode != 0
    run = tmp_path / "run"
    assert (run / "checkpoint/last.safetensors").is_file() and not (run / "metrics.json").exists()
    assert edgeft("finetune", "--resume", "-o", str(tmp_path / "run")).returncode == 0
    assert epochs(tmp_path / "run") == epochs(tmp_path / "reference")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_removes_the_temporary_work(text_run, tmp_path, sig, code):
    out = tmp_path / "bundle"
    process = subprocess.Popen([sys.executable, "-m", "edgeft", "export", str(text_run), "-o", str(out),
                                "--quantize", "static"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not debris(tmp_path) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert debris(tmp_path), "the export never started its work"
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code and "Traceback" not in stderr, stderr
    assert list(tmp_path.iterdir()) == []
