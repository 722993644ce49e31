"""Devices and precision: clear refusals where the hardware is missing; bf16 autocast on CPU."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgeft.cli import main
from edgeft.errors import UsageError
from edgeft.finetune import FinetuneConfig, finetune
from edgeft.finetune.device import Precision, resolve_device


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_request_without_cuda_is_one_clear_line(text_csv, tmp_path):
    result = CliRunner().invoke(main, ["finetune", "-b", "minilm_l6", "-d", str(text_csv), "-o", str(tmp_path / "o"),
                                       "--device", "cuda"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert result.output.startswith("Error: --device cuda: CUDA is not available here")
    assert not (tmp_path / "o").exists()


def test_auto_picks_cpu_without_accelerators():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("an accelerator is present")
    assert resolve_device("auto") == torch.device("cpu")


def test_unknown_device_and_fp16_on_cpu():
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu:0")
    with pytest.raises(UsageError, match="fp16 needs a CUDA device"):
        Precision("fp16", "cpu")


def test_bf16_autocast_trains_on_cpu(tiny_bert, text_csv, tmp_path):
    seen = set()

    def record(module, args, output):  # noqa: ANN001
        if isinstance(module, torch.nn.Linear) and module.weight.requires_grad and torch.is_grad_enabled():
            seen.add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        result = finetune(FinetuneConfig(backbone=str(tiny_bert), data=str(text_csv), output=str(tmp_path / "r"),
                                         freeze="1", epochs=2, precision="bf16", device="cpu"))
    finally:
        hook.remove()
    assert seen == {torch.bfloat16}  # the training forward pass of the trained layers ran in bf16
    config = json.loads((tmp_path / "r/config.json").read_text())
    assert config["device"] == {"device": "cpu", "precision": "bf16", "processes": 1}
    assert result.epochs_run == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_finetune(tiny_bert, text_csv, tmp_path, precision):
    result = finetune(FinetuneConfig(backbone=str(tiny_bert), data=str(text_csv), output=str(tmp_path / "r"),
                                     freeze="1", epochs=2, precision=precision, device="cuda"))
    assert json.loads((tmp_path / "r/config.json").read_text())["device"]["device"].startswith("cuda")
    assert result.epochs_run == 2
