"""`edgeft bench` as a user runs it: sweeps, side-by-side ratios, reports, comparisons, targets."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from edgeft.bench import BenchConfig, run_bench
from edgeft.bench.compare import compare_reports
from edgeft.bench.report import write_report
from edgeft.bench.targets import TARGETS, _stage_runner
from edgeft.cli import main
from edgeft.errors import UsageError

QUICK = dict(runs=6, rounds=2, warmup=1)
ROW_KEYS = {"bundle", "kind", "threads", "batch", "seq", "tokens", "provider", "latency_ms", "throughput_per_s", "load_s",
            "first_run_ms", "peak_rss_mb", "gflop", "gflops_per_s", "ratio", "samples_ms"}


def test_every_target_has_a_test():
    assert set(TARGETS) == {"cpu", "cuda", "ssh", "qemu-arm64"}  # each is exercised below or in test_remote.py


def test_image_sweep_over_batch_and_threads(image_bundle):
    report = run_bench(BenchConfig((str(image_bundle),), batch_sizes=(1, 2), threads=(1, 2), **QUICK))
    rows = report["results"]
    assert [(r["threads"], r["batch"]) for r in rows] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for r in rows:
        assert set(r) == ROW_KEYS and r["seq"] is None and r["kind"] == "onnx"
        lat = r["latency_ms"]
        assert lat["runs"] == 6 and len(r["samples_ms"]) == 6
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["throughput_per_s"] == pytest.approx(1000 * r["batch"] / lat["mean"])
        assert r["ratio"] == 1.0 and r["peak_rss_mb"] > 10 and r["load_s"] > 0 and r["first_run_ms"] > 0
        assert r["gflop"] > 0 and r["gflops_per_s"] == pytest.approx(r["gflop"] / (lat["p50"] / 1000))
    assert rows[1]["gflop"] == pytest.approx(2 * rows[0]["gflop"])
    assert report["golden"][0]["within_tolerance"] and report["golden"][0]["top1_agreement"] == 1.0
    fp = report["fingerprint"]
    assert {"arch", "cpu", "cpu_features", "logical_cores", "os", "python", "runtime_version"} <= set(fp)
    assert report["bundles"][0]["sha256"] and report["bundles"][0]["size_bytes"] > 0


def test_text_sweep_over_sequence_lengths_and_real_inputs(text_bundle, tmp_path):
    report = run_bench(BenchConfig((str(text_bundle),), seq_lengths=(8, 32), threads=(1,), **QUICK))
    assert [(r["seq"], r["tokens"]) for r in report["results"]] == [(8, 8.0), (32, 32.0)]
    assert report["results"][1]["gflop"] > 3 * report["results"][0]["gflop"]
    texts = tmp_path / "texts.txt"
    texts.write_text("short one\na much longer sentence about the weather and the rain today\n" * 4)
    real = run_bench(BenchConfig((str(text_bundle),), inputs=str(texts), batch_sizes=(2,), threads=(1,), **QUICK))
    row = real["results"][0]
    assert row["seq"] is None and 2 < row["tokens"] < 32 and real["settings"]["inputs"].startswith("real")


def test_side_by_side_ratios_to_the_reference(image_bundle, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(image_bundle, twin)
    report = run_bench(BenchConfig((str(image_bundle), str(twin)), threads=(1,), reference="twin", **QUICK))
    by_name = {r["bundle"]: r for r in report["results"]}
    assert by_name["twin"]["ratio"] == 1.0
    assert by_name[image_bundle.name]["ratio"] == pytest.approx(
        by_name[image_bundle.name]["latency_ms"]["p50"] / by_name["twin"]["latency_ms"]["p50"])
    with pytest.raises(UsageError, match="--reference"):
        run_bench(BenchConfig((str(image_bundle),), reference="nope", **QUICK))


def test_a_bare_onnx_file_beside_a_bundle(image_bundle, tmp_path):
    other = tmp_path / "other.onnx"
    shutil.copy2(image_bundle / "model.onnx", other)
    report = run_bench(BenchConfig((str(image_bundle), str(other)), threads=(1,), **QUICK))
    assert [b["kind"] for b in report["bundles"]] == ["onnx", "model"]
    assert [g["bundle"] for g in report["golden"]] == [image_bundle.name]  # a bare file has no golden vectors
    assert report["results"][1]["gflop"] == report["results"][0]["gflop"]
    with pytest.raises(UsageError, match="may follow a bundle"):
        run_bench(BenchConfig((str(other),), **QUICK))


def test_mixed_models_are_refused(image_bundle, text_bundle):
    with pytest.raises(UsageError, match="same inputs"):
        run_bench(BenchConfig((str(image_bundle), str(text_bundle)), **QUICK))


def test_torch_baseline_runs_the_source_model(image_bundle):
    report = run_bench(BenchConfig((str(image_bundle),), threads=(1,), baseline="torch", **QUICK))
    kinds = [r["kind"] for r in report["results"]]
    assert kinds == ["torch", "onnx"] and report["reference"] == "torch-eager"
    assert report["results"][0]["provider"] == "torch-eager-cpu" and report["results"][0]["ratio"] == 1.0


def test_report_files(image_bundle, tmp_path):
    report = run_bench(BenchConfig((str(image_bundle),), batch_sizes=(1, 2), threads=(1,), **QUICK))
    written = write_report(report, tmp_path / "rep")
    names = sorted(p.name for p in written)
    assert names == ["latency_distribution.png", "latency_vs_batch.png", "ratios.png", "results.csv", "results.json",
                     "results.md"]
    assert json.loads((tmp_path / "rep/results.json").read_text()) == json.loads(json.dumps(report))
    with open(tmp_path / "rep/results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["batch"]) for r in rows] == [1, 2] and float(rows[0]["p50_ms"]) > 0
    md = (tmp_path / "rep/results.md").read_text()
    assert "| bundle |" in md and image_bundle.name in md and "golden" in md
    for png in (p for p in written if p.suffix == ".png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_cli_table_json_and_report(image_bundle, tmp_path):
    result = CliRunner().invoke(main, ["bench", str(image_bundle), "--runs", "4", "--rounds", "2", "--warmup", "1",
                                       "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["schema"] == "edgeft.bench/1" and report["results"][0]["latency_ms"]["runs"] == 4
    result = CliRunner().invoke(main, ["bench", str(image_bundle), "--runs", "4", "--rounds", "2", "--threads", "1",
                                       "-o", str(tmp_path / "rep"), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "P50 MS" in result.stdout and "golden" in result.stdout and (tmp_path / "rep/results.json").is_file()
    assert not list((tmp_path / "rep").glob("*.png"))


@pytest.mark.parametrize("args, message", [
    (["bench", "nowhere"], "is not a bundle folder"),
    (["bench", "{b}", "--target", "cpux"], "Did you mean 'cpu'"),
    (["bench", "{b}", "--target", "ssh://"], "ssh://[user@]host[:port]"),
    (["bench", "{b}", "--batch-sizes", "1,x"], "comma-separated"),
    (["bench", "{b}", "--batch-sizes", "0"], "positive"),
    (["bench", "{b}", "--target", "ssh://127.0.0.1", "--baseline", "torch"], "this machine only"),
])
def test_bad_input_is_one_line_and_exit_2(image_bundle, args, message):
    result = CliRunner().invoke(main, [a.replace("{b}", str(image_bundle)) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has onnxruntime-gpu")
def test_cuda_target_refuses_cleanly_without_onnxruntime_gpu(image_bundle):
    result = CliRunner().invoke(main, ["bench", str(image_bundle), "--target", "cuda"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error: --target cuda is not available here") and "\n" not in result.output.strip()


def _report_with(image_bundle, **fingerprint):
    report = run_bench(BenchConfig((str(image_bundle),), threads=(1,), **QUICK))
    changed = json.loads(json.dumps(report))
    changed["fingerprint"].update(fingerprint)
    return report, changed


def test_compare_same_machine_and_a_different_one(image_bundle, tmp_path):
    a, b = _report_with(image_bundle)
    slower = b["results"][0]["latency_ms"]
    slower["p50"] = 2.5 * a["results"][0]["latency_ms"]["p50"]
    rows, warnings = compare_reports(a, b)
    assert len(rows) == 1 and rows[0]["ratio"] == pytest.approx(2.5) and warnings == []  # B's p50 over A's
    _, other = _report_with(image_bundle, cpu="Some ARM board", cpu_features=["dotprod"], runtime_version="1.17.0")
    rows, warnings = compare_reports(a, other)
    assert len(rows) == 1 and any("cpu:" in w for w in warnings) and any("runtime_version" in w for w in warnings)
    # one cloud name, two generations ("AMD EPYC" is Zen 1 on one VM and Zen 3 on another): the other
    # host's id is derived from this one's, whatever this host is
    other_id = f"{a['fingerprint']['cpu_id']} (another generation)"
    _, other_host = _report_with(image_bundle, cpu_id=other_id)
    assert [w for w in compare_reports(a, other_host)[1] if "cpu_id" in w and other_id in w]
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(other))
    result = CliRunner().invoke(main, ["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert result.exit_code == 0 and "B/A" in result.stdout and "Warning: the fingerprints differ" in result.stderr
    result = CliRunner().invoke(main, ["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json"])
    out = json.loads(result.stdout)
    assert result.exit_code == 0 and len(out["rows"]) == 1 and any("cpu:" in w for w in out["warnings"])
    emulated = {**other, "emulated": True}
    (tmp_path / "e.json").write_text(json.dumps(emulated))
    result = CliRunner().invoke(main, ["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "e.json")])
    assert result.exit_code == 2 and "never compared with native" in result.output
    (tmp_path / "x.json").write_text("{}")
    result = CliRunner().invoke(main, ["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "x.json")])
    assert result.exit_code == 2 and "not an edgeft bench results.json" in result.output


def test_runner_is_self_contained_and_torch_free(image_bundle, tmp_path):
    """Staged alone, with edgeft made unimportable, the runner still serves; it never imports torch."""
    stage = tmp_path / "stage"
    (stage / "edgeft").mkdir(parents=True)
    (stage / "edgeft/__init__.py").write_text("raise ImportError('edgeft is not on this device')\n")
    _stage_runner(stage)
    requests = "\n".join(json.dumps(r) for r in [{"cmd": "load", "threads": 1}, {"cmd": "golden"}, {"cmd": "quit"}])
    done = subprocess.run([sys.executable, "-X", "importtime", str(stage / "runner.py"), str(image_bundle)], input=requests,
                          capture_output=True, text=True, timeout=120, cwd=stage)
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and all(r["ok"] for r in replies), done.stdout
    assert replies[0]["fingerprint"]["arch"] and len(replies[2]["logits"]) == 4
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert {"onnxruntime", "numpy", "_edgeft_cpu", "_edgeft_sessions"} <= imported  # the staged copies, not edgeft's
    assert not imported & {"torch", "transformers", "onnx", "optimum"}
    expected = np.load(image_bundle / "golden.npz")["logits"]
    assert np.allclose(replies[2]["logits"], expected, atol=1e-4)


def test_min_time_times_each_point_for_at_least_that_long(image_bundle):
    report = run_bench(BenchConfig((str(image_bundle),), threads=(1,), runs=None, min_time=0.4, rounds=2, warmup=1))
    row = report["results"][0]
    assert report["settings"]["min_time_s"] == 0.4 and report["settings"]["runs"] is None
    assert sum(row["samples_ms"]) >= 400 and row["latency_ms"]["runs"] == len(row["samples_ms"]) >= 6


def test_golden_lines_say_plainly_when_a_target_disagrees(image_bundle):
    from edgeft.bench.report import golden_lines

    report = run_bench(BenchConfig((str(image_bundle),), threads=(1,), **QUICK))
    [agrees] = golden_lines(report)
    assert f"golden {image_bundle.name}: agrees with the exported model's outputs: top-1 100% of 4" in agrees
    report["golden"][0].update(within_tolerance=False, max_abs_diff=0.5)
    [beyond] = golden_lines(report)
    assert ": DISAGREES with" in beyond and "max abs diff 0.5 (tolerance" in beyond
    report["golden"][0].update(within_tolerance=True, top1_agreement=0.75)
    assert ": DISAGREES with" in golden_lines(report)[0] and "top-1 75% of 4" in golden_lines(report)[0]
