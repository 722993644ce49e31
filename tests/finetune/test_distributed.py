"""Data-parallel fine-tuning: two real processes under torchrun (gloo, CPU) train the same
weights as one process, and only rank 0 writes the run directory."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from edgeft.finetune import FinetuneConfig, finetune
from edgeft.finetune.distributed import GlobalBatchSampler, RanksDivergedError, check_ranks_agree
from tests.conftest import read_json


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rank_slices_cover_the_single_process_batches():
    single = list(GlobalBatchSampler(23, 8, seed=3, shuffle=True))
    ranks = [list(GlobalBatchSampler(23, 8, seed=3, shuffle=True, rank=r, world_size=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == single


def _diverge_worker(rank: int, port: int, perturb: bool, results) -> None:  # noqa: ANN001
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    if perturb and rank == 1:
        with torch.no_grad():
            model.weight[0, 0] += 1e-6
    try:
        check_ranks_agree(model)
        results.put((rank, "agree"))
    except RanksDivergedError:
        results.put((rank, "diverged"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("perturb, expected", [(False, "agree"), (True, "diverged")])
def test_rank_divergence_is_detected(perturb, expected):
    ctx = torch.multiprocessing.get_context("spawn")
    results = ctx.Queue()
    torch.multiprocessing.start_processes(_diverge_worker, args=(_free_port(), perturb, results), nprocs=2,
                                          start_method="spawn")
    assert sorted(results.get(timeout=30) for _ in range(2)) == [(0, expected), (1, expected)]


def test_two_processes_train_the_same_weights_as_one(tiny_bert, text_csv, tmp_path):
    common = dict(backbone=str(tiny_bert), data=str(text_csv), epochs=3, batch_size=8, lr=1e-3,
                  freeze="1", dropout=0.0, patience=0, device="cpu")
    finetune(FinetuneConfig(output=str(tmp_path / "one"), **common))
    args = ["finetune", "-b", str(tiny_bert), "-d", str(text_csv), "-o", str(tmp_path / "two"), "--epochs", "3",
            "--batch-size", "8", "--lr", "1e-3", "--freeze", "1", "--dropout", "0", "--patience", "0",
            "--device", "cpu", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", str(_free_port()), "-m", "edgeft", *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, "\n".join(l for l in proc.stderr.splitlines() if "DEBUG" not in l)[-4000:]
    assert proc.stdout.count('"run_dir"') == 1, "only rank 0 reports"
    one, two = load_file(tmp_path / "one/model.safetensors"), load_file(tmp_path / "two/model.safetensors")
    assert set(one) == set(two)
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name
    metrics = read_json(tmp_path / "two/metrics.json")
    assert metrics["processes"] == 2 and len(metrics["ranks_weights_sha256"]) == 64
    single = read_json(tmp_path / "one/metrics.json")["epochs"]
    for a, b in zip(single, metrics["epochs"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_accuracy"] == b["val_accuracy"]
    assert read_json(tmp_path / "two/config.json")["device"]["processes"] == 2
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "a second writer or a half-written run dir"
    assert json.loads(proc.stdout)["epochs_run"] == 3
