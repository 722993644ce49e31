"""A fine-tune run as a user drives it: run directory, determinism, best checkpoint, resume."""

import pytest
import torch
from safetensors.torch import load_file

from edgeft.finetune import FinetuneConfig, finetune, load_run
from edgeft.finetune import trainer as trainer_module
from tests.conftest import read_json, write_image_folder


def _config(data, out, **options):
    defaults = dict(backbone="efficientnet_lite0", epochs=4, batch_size=8, image_size=48, patience=0, lr=1e-2)
    return FinetuneConfig(data=str(data), output=str(out), **{**defaults, **options})


def test_run_directory_contents(image_folder, tmp_path):
    result = finetune(_config(image_folder, tmp_path / "run"))
    run = tmp_path / "run"
    names = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert names == {"config.json", "model.safetensors", "metrics.json", "checkpoint/last.safetensors"}
    config = read_json(run / "config.json")
    assert config["backbone"]["name"] == "efficientnet_lite0"
    assert config["labels"] == ["blue", "green", "red"]
    assert config["preprocessing"]["size"] == 48 and config["preprocessing"]["mean"] == [127.0] * 3
    assert config["freeze"]["policy"] == "all" and config["freeze"]["trainable_params"] == 1280 * 3 + 3
    assert config["seed"] == 0 and "torch" in config["versions"]
    metrics = read_json(run / "metrics.json")
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "val_accuracy", "seconds"} <= set(metrics["epochs"][0])
    assert result.best_val_accuracy == max(e["val_accuracy"] for e in metrics["epochs"])
    assert not list(tmp_path.glob(".run*")), "temporary files left behind"


def test_same_seed_same_metrics(image_folder, tmp_path):
    strip = lambda m: [{k: v for k, v in e.items() if k != "seconds"} for e in m["epochs"]]  # noqa: E731
    for name in ("a", "b"):
        finetune(_config(image_folder, tmp_path / name, freeze="7", cache_features=False))
    assert strip(read_json(tmp_path / "a/metrics.json")) == strip(read_json(tmp_path / "b/metrics.json"))


def test_best_checkpoint_is_kept(image_folder, tmp_path):
    finetune(_config(image_folder, tmp_path / "run", epochs=3, lr=5.0))  # a wild lr: epochs get worse
    metrics = read_json(tmp_path / "run/metrics.json")
    run = load_run(tmp_path / "run")
    best = metrics["best_epoch"]
    assert best == max(metrics["epochs"], key=lambda e: (e["val_accuracy"], -e["val_loss"]))["epoch"]
    last = load_file(tmp_path / "run/checkpoint/last.safetensors")
    saved = load_file(tmp_path / "run/model.safetensors")
    if best != 3:
        assert not torch.equal(saved["head.1.weight"], last["model.head.1.weight"])
    assert torch.equal(run.model.state_dict()["head.1.weight"], saved["head.1.weight"])


def test_resume_continues_an_interrupted_run(image_folder, tmp_path, monkeypatch):
    full = finetune(_config(image_folder, tmp_path / "full", freeze="8"))
    original = trainer_module.Trainer._train_epoch

    def crash_in_epoch_3(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        finetune(_config(image_folder, tmp_path / "cut", freeze="8"))
    assert len(read_json(tmp_path / "cut/metrics.json")["epochs"]) == 2
    trained = []

    def record(self, epoch):
        trained.append(epoch)
        return original(self, epoch)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", record)
    resumed = finetune(FinetuneConfig(backbone="", data="", output=str(tmp_path / "cut")), resume=True)
    assert trained == [3, 4]  # the finished epochs are not trained again
    a = read_json(tmp_path / "full/metrics.json")["epochs"]
    b = read_json(tmp_path / "cut/metrics.json")["epochs"]
    assert [e["epoch"] for e in b] == [1, 2, 3, 4]
    for x, y in zip(a, b, strict=True):
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)
        assert x["val_accuracy"] == y["val_accuracy"]
    assert resumed.best_val_accuracy == full.best_val_accuracy


def test_early_stopping(text_csv, tiny_bert, tmp_path):
    result = finetune(FinetuneConfig(backbone=str(tiny_bert), data=str(text_csv), output=str(tmp_path / "r"),
                                     epochs=30, lr=1e-9, patience=2))
    assert result.stopped_early and result.epochs_run < 30


def test_text_run_keeps_its_tokenizer(text_csv, tiny_bert, tmp_path):
    finetune(FinetuneConfig(backbone=str(tiny_bert), data=str(text_csv), output=str(tmp_path / "r"), epochs=1))
    assert (tmp_path / "r/tokenizer.json").is_file()
    config = read_json(tmp_path / "r/config.json")
    assert config["preprocessing"]["kind"] == "text" and config["head"]["pooling"] == "mean"
    run = load_run(tmp_path / "r")
    assert run.labels == ["food", "sports", "weather"]


def test_val_data_is_the_validation_set(image_folder, tmp_path):
    val = write_image_folder(tmp_path / "val", per_class=2)
    finetune(_config(image_folder, tmp_path / "run", val_data=str(val), epochs=1))
    config = read_json(tmp_path / "run/config.json")
    assert config["data"]["split"] == f"explicit validation data {val}"
    assert config["data"]["val_items"] == 6 and config["data"]["train_items"] == 18  # nothing held out of the training folder


def test_default_head_fit_reaches_the_optimum_of_its_objective(text_csv, tiny_bert, tmp_path):
    """`--epochs auto` with only the head training: one L-BFGS fit on the cached features, at a
    point where the penalized loss no longer moves (its gradient is ~0), and better than a few
    AdamW epochs of the same head."""
    from edgeft.finetune.head_fit import HeadFitConfig, fit_linear_head

    fitted = finetune(FinetuneConfig(backbone=str(tiny_bert), data=str(text_csv), output=str(tmp_path / "auto")))
    finetune(FinetuneConfig(backbone=str(tiny_bert), data=str(text_csv), output=str(tmp_path / "e3"),
                             epochs=3, cache_features=False))  # AdamW from a fresh head (no fit to start from)
    metrics = read_json(tmp_path / "auto/metrics.json")
    assert fitted.epochs_run == 1 and metrics["epochs"][0]["head_fit"]["converged"]
    assert metrics["epochs"][0]["head_fit"]["iterations"] > 1  # metrics.json records the iterations
    assert read_json(tmp_path / "auto/config.json")["hyperparameters"]["optimizer"].startswith("L-BFGS")
    assert metrics["epochs"][0]["train_loss"] < read_json(tmp_path / "e3/metrics.json")["epochs"][-1]["train_loss"]

    rng = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=rng) * torch.linspace(0.1, 50, 16)  # badly scaled features
    y = (x[:, 0] / 0.1 + x[:, 5] / 16 > 0).long() + (x[:, 15] > 0).long()
    fit = fit_linear_head(x, y, 3, HeadFitConfig(c=1.0))
    assert fit.converged
    mean, std = x.mean(0), x.std(0, unbiased=False)
    std = torch.clamp(std, min=float(std.median()))  # the fit's scaling: never below the median spread
    w = (fit.weight.double() * std.double()).requires_grad_(True)  # back in standardized coordinates
    b = (fit.bias.double() + fit.weight.double() @ mean.double()).requires_grad_(True)
    z = ((x - mean) / std).double()
    loss = torch.nn.functional.cross_entropy(z @ w.T + b, y, reduction="sum") + 0.5 * (w * w).sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-3 and b.grad.abs().max() < 1e-3


def test_epochs_on_a_frozen_backbone_refine_the_fitted_head(text_csv, tiny_bert, tmp_path):
    """`--epochs N` with only the head training: N AdamW epochs that start from the convergent fit
    (from a fresh head, 8 epochs on the real digits gave 10 points less than the default)."""
    options = dict(backbone=str(tiny_bert), data=str(text_csv))
    auto = finetune(FinetuneConfig(**options, output=str(tmp_path / "auto")))
    epochs = finetune(FinetuneConfig(**options, output=str(tmp_path / "e2"), epochs=2, patience=0))
    fitted, refined = read_json(tmp_path / "auto/metrics.json"), read_json(tmp_path / "e2/metrics.json")
    assert refined["head_init"]["converged"] and refined["head_init"]["iterations"] > 0
    assert [e["epoch"] for e in refined["epochs"]] == [1, 2] and all(e["lr"] is not None for e in refined["epochs"])
    # where the fit ended (val loss 0.08 here), not where a fresh head starts (~log 3 = 1.1)
    assert refined["epochs"][0]["val_loss"] < 0.1 + 2 * fitted["epochs"][0]["val_loss"]
    assert epochs.best_val_accuracy >= auto.best_val_accuracy


def test_auto_epochs_beyond_a_head_are_ten_adamw_epochs_with_early_stopping(text_csv, tiny_bert, tmp_path):
    options = dict(backbone=str(tiny_bert), data=str(text_csv), freeze="none")
    full = finetune(FinetuneConfig(**options, output=str(tmp_path / "full"), patience=0))
    assert full.epochs_run == 10 and read_json(tmp_path / "full/config.json")["hyperparameters"]["optimizer"] == "AdamW"
    stopped = finetune(FinetuneConfig(**options, output=str(tmp_path / "stop"), patience=1, lr=30.0))  # diverges
    metrics = read_json(tmp_path / "stop/metrics.json")
    assert metrics["stopped_early"] and stopped.epochs_run < 10
