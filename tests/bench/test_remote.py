"""Remote and emulated targets: a real sshd on 127.0.0.1 (Debian's openssh-server, installed by
.ci/run) and user-mode QEMU with the aarch64 onnxruntime (scripts/setup_arm64.sh)."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from edgeft.bench import BenchConfig, BenchInterrupted, TargetOptions, run_bench
from edgeft.cli import main
from tests.conftest import needs_arm64

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
QUICK = dict(runs=4, rounds=2, warmup=1, threads=(1,))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd on 127.0.0.1 with its own host key and one authorised client key; yields the ssh
    config file, the target and the server process."""
    if not os.path.exists(SSHD):
        pytest.skip("sshd is not installed (apt-get install openssh-server; .ci/run does)")
    home = tmp_path_factory.mktemp("sshd")
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / key)], check=True)
    shutil.copy(home / "client.pub", home / "authorized_keys")
    port = _free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home / 'host'}\nAuthorizedKeysFile {home / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\n"
        f"UsePAM no\nPermitRootLogin prohibit-password\nPidFile {home / 'sshd.pid'}\nSubsystem sftp internal-sftp\n")
    (home / "ssh_config").write_text(
        f"Host 127.0.0.1\n  User {getpass.getuser()}\n  IdentityFile {home / 'client'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {home / 'known_hosts'}\n  StrictHostKeyChecking accept-new\n  LogLevel ERROR\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if server.poll() is not None:
            pytest.fail(f"sshd did not start: {server.stderr.read()}")
        time.sleep(0.05)
    yield {"config": str(home / "ssh_config"), "target": f"ssh://127.0.0.1:{port}", "server": server}
    server.terminate()
    server.wait(timeout=10)


def _options(sshd) -> TargetOptions:
    return TargetOptions(ssh_config=sshd["config"], remote_python=sys.executable)


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in ("samples_ms",)}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__ if value is not None else None


def test_ssh_bench_returns_the_local_schema(sshd, image_bundle, tmp_path):
    local = run_bench(BenchConfig((str(image_bundle),), **QUICK))
    remote = run_bench(BenchConfig((str(image_bundle),), target=sshd["target"], target_options=_options(sshd), **QUICK))
    assert _shape(remote["results"]) == _shape(local["results"])
    assert set(remote) == set(local) and set(remote["fingerprint"]) == set(local["fingerprint"])
    assert remote["target"] == sshd["target"] and remote["golden"][0]["within_tolerance"]
    result = CliRunner().invoke(main, ["bench", str(image_bundle), "--target", sshd["target"], "--ssh-config",
                                       sshd["config"], "--remote-python", sys.executable, "--runs", "2", "--rounds", "1",
                                       "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["latency_ms"]["runs"] == 2


def test_unreachable_host_is_one_clear_line(image_bundle, sshd):
    closed = f"ssh://127.0.0.1:{_free_port()}"
    result = CliRunner().invoke(main, ["bench", str(image_bundle), "--target", closed, "--ssh-config", sshd["config"]])
    assert result.exit_code == 1
    assert result.output.startswith("Error: 127.0.0.1:") and "connecting failed" in result.output
    assert "Traceback" not in result.output


def test_dropped_connection_keeps_what_was_measured(sshd, image_bundle, tmp_path):
    """The connection dies after the first sweep point: the error says so, and that point's
    results are kept (and written)."""
    server = sshd["server"]

    def drop(report):
        subprocess.run(["pkill", "-KILL", "-P", str(server.pid)])  # the per-connection sshd processes

    config = BenchConfig((str(image_bundle),), batch_sizes=(1, 2, 4), target=sshd["target"],
                         target_options=_options(sshd), **QUICK)
    with pytest.raises(BenchInterrupted) as caught:
        run_bench(config, on_point=drop)
    report = caught.value.report
    assert "stopped" in str(caught.value) and report["error"] == str(caught.value)
    assert [r["batch"] for r in report["results"]] == [1]
    assert server.poll() is None  # the listener survives; a new connection works
    again = run_bench(BenchConfig((str(image_bundle),), target=sshd["target"], target_options=_options(sshd), **QUICK))
    assert again["error"] is None


def test_the_cli_writes_the_results_measured_before_a_lost_connection(sshd, image_bundle, tmp_path, monkeypatch):
    import edgeft.bench

    server, run = sshd["server"], edgeft.bench.run_bench

    def drop(report):
        subprocess.run(["pkill", "-KILL", "-P", str(server.pid)])

    monkeypatch.setattr(edgeft.bench, "run_bench", lambda config, **kw: run(config, on_point=drop, **kw))
    result = CliRunner().invoke(main, ["bench", str(image_bundle), "--target", sshd["target"], "--ssh-config", sshd["config"],
                                       "--remote-python", sys.executable, "--batch-sizes", "1,2,4", "--runs", "2",
                                       "--rounds", "1", "--threads", "1", "-o", str(tmp_path / "rep"), "--no-plots"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "Traceback" not in result.output
    assert f"the 1 results measured before are in {tmp_path / 'rep' / 'results.json'}" in result.output
    saved = json.loads((tmp_path / "rep/results.json").read_text())
    assert [r["batch"] for r in saved["results"]] == [1] and saved["error"]




@pytest.mark.arm
@needs_arm64
def test_qemu_arm64_runs_the_golden_vectors(image_bundle, text_bundle, tmp_path):
    """Float kernels agree across ISAs; INT8 ones may not (x86 without VNNI saturates where ARM
    is exact), so the INT8 bundle's comparison is reported with its numbers, not asserted equal."""
    report = run_bench(BenchConfig((str(image_bundle),), target="qemu-arm64", **QUICK))
    assert report["emulated"] and report["fingerprint"]["arch"] == "aarch64" and report["fingerprint"]["emulated"]
    golden = report["golden"][0]
    assert golden["samples"] == 4 and golden["top1_agreement"] == 1.0 and golden["within_tolerance"], golden
    assert report["results"][0]["latency_ms"]["runs"] == 4
    result = CliRunner().invoke(main, ["bench", str(text_bundle), "--target", "qemu-arm64", "--runs", "1", "--rounds", "1",
                                       "--threads", "1", "-o", str(tmp_path / "rep"), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "EMULATED" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("golden"))
    golden = json.loads((tmp_path / "rep/results.json").read_text())["golden"][0]
    assert golden["top1_agreement"] == 1.0, golden  # INT8 numbers may move across ISAs; the top-1 does not here
    assert f"max abs diff {golden['max_abs_diff']:.3g}" in line, (line, golden)
    agrees = golden["within_tolerance"] and golden["top1_agreement"] == 1.0
    assert ("DISAGREES" not in line and "agrees" in line) if agrees else ("DISAGREES" in line), line
    assert ("INT8 kernels differ between platforms" in result.stderr) != agrees


def test_qemu_arm64_missing_environment_is_exit_2(image_bundle, tmp_path):
    result = CliRunner().invoke(main, ["bench", str(image_bundle), "--target", "qemu-arm64", "--arm64-root", str(tmp_path)])
    assert result.exit_code == 2 and "scripts/setup_arm64.sh" in result.output


@pytest.mark.arm
@needs_arm64
def test_doctor_reads_the_emulated_target_for_a_bundle(image_bundle):
    result = CliRunner().invoke(main, ["doctor", str(image_bundle), "--target", "qemu-arm64", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cpu"]["arch"] == "aarch64"
    from edgeft.export.targets import resolve_target

    assert report["cpu"] != resolve_target("qemu-arm64").cpu.to_dict()  # read there, not the ARM64 profile
    statuses = {v["recipe"]: v["status"] for v in report["verdicts"]}
    assert statuses["static u8s8 per-channel minmax"] == "try"  # 8-bit weights are exact on ARM
