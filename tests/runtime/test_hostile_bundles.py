"""Bundles, golden files and zips that are broken or hostile: each gives one ``Error:`` line and
exit 2, or a correct result; never a traceback, a wrong answer, or memory beyond a cap."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeft.cli import main
from edgeft.errors import EdgeftError
from edgeft.runtime import EdgeModel

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@contextlib.contextmanager
def memory_cap(extra: int = 3 * 2**30):
    """Address space capped at what the process has now plus ``extra``: a memory bomb fails fast."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def outcome(bundle: Path, items: list) -> str:
    """``refused`` (one line, exit code 2), ``ok`` or ``mismatch`` (the golden check says so)."""
    try:
        with memory_cap():
            model = EdgeModel.load(bundle)
            check = model.check_golden()
            predictions = model.predict(items)
    except EdgeftError as exc:
        assert exc.exit_code == 2 and "\n" not in str(exc), repr(exc)
        return "refused"
    assert all(p.label in model.manifest.labels for p in predictions)
    return "ok" if check.ok else "mismatch"


def one_error_line(args: list[str], **kwargs) -> str:
    result = CliRunner().invoke(main, args, **kwargs)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    return lines[0]


def _items(bundle: Path) -> list:
    if json.loads((bundle / "edgeft.json").read_text()).get("task") == "text-classification":
        return ["a match today", "soup and bread"]
    return [np.full((50, 70, 3), (200, 40, 40), np.uint8)]


def _edit(bundle: Path, path: tuple, value=None, delete: bool = False) -> None:
    data = json.loads((bundle / "edgeft.json").read_text())
    node = data
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    (bundle / "edgeft.json").write_text(json.dumps(data))


@pytest.fixture(params=["text", "image", "image_app"])
def any_bundle(request, tmp_path) -> Path:
    return Path(shutil.copytree(request.getfixturevalue(f"{request.param}_bundle"), tmp_path / "bundle"))


# -- every reported row, through the CLI ----------------------------------------------------------
TEXT_ROWS = {
    "labels of the wrong length": (("labels",), ["a", "b"], "labels"),
    "input_names the graph lacks": (("preprocessing", "input_names"), ["input_ids", "attention_mask"], "input_names"),
    "max_length beyond the model's positions": (("preprocessing", "max_length"), 4096, "max_length"),
    "an unknown preprocessing key": (("preprocessing", "stride"), 2, "unknown field"),
    "a model path out of the bundle": (("files", "model"), "../../x/model.onnx", "files.model"),
    "an absolute model path": (("files", "model"), "/etc/hostname", "files.model"),
    "golden.file /etc/passwd": (("golden", "file"), "/etc/passwd", "golden.file"),
    "golden.atol of the wrong type": (("golden", "atol"), "0.1", "golden.atol"),
}
IMAGE_ROWS = {
    "std 0": (("preprocessing", "std"), [0, 0, 0], "preprocessing.std"),
    "mean of one value": (("preprocessing", "mean"), [1], "preprocessing.mean"),
    "size 0": (("preprocessing", "size"), 0, "preprocessing.size"),
    "size negative": (("preprocessing", "size"), -64, "preprocessing.size"),
    "size a string": (("preprocessing", "size"), "64", "preprocessing.size"),
    "size huge": (("preprocessing", "size"), 10**9, "preprocessing.size"),
    "resize 100000": (("preprocessing", "resize"), 100000, "preprocessing.resize"),
    "interpolation lanczos": (("preprocessing", "interpolation"), "lanczos", "interpolation"),
    "labels of the wrong length": (("labels",), ["a", "b", "c", "d"], "labels"),
}


@pytest.mark.parametrize("row", list(TEXT_ROWS))
def test_text_manifest_rows_give_one_error_line(text_bundle, tmp_path, row):
    bundle = Path(shutil.copytree(text_bundle, tmp_path / "bundle"))
    path, value, field = TEXT_ROWS[row]
    _edit(bundle, path, value)
    for command in (["verify", str(bundle)], ["predict", str(bundle), "some text"]):
        assert field in one_error_line(command)


@pytest.mark.parametrize("row", list(IMAGE_ROWS))
def test_image_manifest_rows_give_one_error_line(image_bundle, tmp_path, row):
    bundle = Path(shutil.copytree(image_bundle, tmp_path / "bundle"))
    path, value, field = IMAGE_ROWS[row]
    _edit(bundle, path, value)
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "x.png")
    for command in (["verify", str(bundle)], ["predict", str(bundle), str(tmp_path / "x.png")]):
        assert field in one_error_line(command)


def test_golden_atol_missing_is_refused(text_bundle, tmp_path):
    bundle = Path(shutil.copytree(text_bundle, tmp_path / "bundle"))
    _edit(bundle, ("golden", "atol"), delete=True)
    assert "golden.atol" in one_error_line(["verify", str(bundle)])


class _RunsCode:
    """Unpickling this runs a command: what a hostile golden file would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


MARKER = Path(tempfile.gettempdir()) / f"edgeft-pickle-ran-{os.getpid()}"


def _golden_variants(golden: Path) -> dict[str, bytes]:
    raw = golden.read_bytes()
    arrays = dict(np.load(golden))
    pickled, missing, wrong = io.BytesIO(), io.BytesIO(), io.BytesIO()
    np.savez(pickled, **{**arrays, "logits": np.array([_RunsCode(MARKER)] * len(arrays["logits"]), dtype=object)})
    np.savez(missing, **{k: v for k, v in arrays.items() if k != "logits"})
    np.savez(wrong, **{**arrays, "logits": arrays["logits"][:, :1]})
    flipped = bytearray(raw)
    with zipfile.ZipFile(golden) as archive:  # a byte of the stored logits, past the .npy header
        info = archive.getinfo("logits.npy")
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    flipped[info.header_offset + 30 + name_len + extra_len + 130] ^= 0xFF
    return {"truncated": raw[: len(raw) // 2], "flipped": bytes(flipped), "pickled": pickled.getvalue(),
            "missing logits": missing.getvalue(), "logits of the wrong shape": wrong.getvalue(), "empty": b""}


@pytest.mark.parametrize("variant", ["truncated", "flipped", "pickled", "missing logits", "logits of the wrong shape",
                                     "empty"])
def test_broken_golden_files_give_one_error_line(text_bundle, tmp_path, variant):
    bundle = Path(shutil.copytree(text_bundle, tmp_path / "bundle"))
    raw = _golden_variants(text_bundle / "golden.npz")[variant]
    (bundle / "golden.npz").write_bytes(raw)
    for command in (["verify", str(bundle)], ["bench", str(bundle), "--runs", "1"]):  # before anything runs
        assert "does not match the manifest's golden.sha256" in one_error_line(command)
    if variant != "flipped":  # with the manifest's hash made to match, the reader's own guards still hold
        _edit(bundle, ("golden", "sha256"), hashlib.sha256(raw).hexdigest())
        MARKER.unlink(missing_ok=True)
        line = one_error_line(["verify", str(bundle)])
        assert "golden" in line and "sha256" not in line, line
        assert not MARKER.exists(), "a pickled golden file ran code"


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_any_changed_byte_of_the_golden_file_is_refused(text_bundle, tmp_path_factory, where, xor):
    bundle = Path(shutil.copytree(text_bundle, tmp_path_factory.mktemp("b") / "bundle"))
    raw = bytearray((bundle / "golden.npz").read_bytes())
    raw[int(where * len(raw))] ^= xor
    (bundle / "golden.npz").write_bytes(bytes(raw))
    assert "golden.sha256" in one_error_line(["verify", str(bundle)])


def test_a_manifest_without_the_golden_hash_is_refused(text_bundle, tmp_path):
    bundle = Path(shutil.copytree(text_bundle, tmp_path / "bundle"))
    _edit(bundle, ("golden", "sha256"), delete=True)
    assert "golden.sha256" in one_error_line(["verify", str(bundle)])


# -- zips ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def packaged(text_bundle, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "app.zip"
    result = CliRunner().invoke(main, ["package", str(text_bundle), "-o", str(out), "--zip"])
    assert result.exit_code == 0, result.output
    return out


def _patch_headers(raw: bytes, name: str, flag: int | None = None, method: int | None = None, crc_xor: int = 0) -> bytes:
    """Edit one entry's local and central headers in place (flag bits, compression method, CRC)."""
    data = bytearray(raw)
    encoded = name.encode()
    for signature, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            length = struct.unpack_from("<H", data, start + name_len_at)[0]
            if data[start + name_at:start + name_at + length] == encoded:
                if flag is not None:
                    struct.pack_into("<H", data, start + flag_at, struct.unpack_from("<H", data, start + flag_at)[0] | flag)
                if method is not None:
                    struct.pack_into("<H", data, start + flag_at + 2, method)
                crc_at = start + flag_at + 8
                struct.pack_into("<I", data, crc_at, struct.unpack_from("<I", data, crc_at)[0] ^ crc_xor)
            start += 4
    return bytes(data)


@pytest.mark.parametrize("variant", ["encrypted", "bad CRC", "unknown compression"])
def test_broken_zip_entries_give_one_error_line(packaged, tmp_path, variant):
    raw = packaged.read_bytes()
    patch = {"encrypted": {"flag": 1}, "bad CRC": {"crc_xor": 0xFFFF}, "unknown compression": {"method": 99}}[variant]
    broken = tmp_path / "broken.zip"
    broken.write_bytes(_patch_headers(raw, "model.onnx", **patch))
    line = one_error_line(["verify", str(broken)])
    assert "broken.zip" in line


def test_a_zip_bomb_is_refused_before_it_is_extracted(packaged, tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.zip"
    shutil.copyfile(packaged, bomb)
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as archive, archive.open("zeros.bin", "w") as f:
        block = bytes(2**20)
        for _ in range(200):  # 200 MB of zeros, about 200 KB deflated
            f.write(block)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert "zip bomb" in one_error_line(["verify", str(bomb)])
    assert sum(p.stat().st_size for p in (tmp_path / "tmp").rglob("*") if p.is_file()) < 2**20


# -- properties: any mutation is refused in one line or runs correctly -----------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=8)


def _paths(node, prefix=()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node[:4]):
            out += _paths(value, prefix + (i,))
    return out


@PROPERTY
@given(data=st.data())
def test_any_manifest_mutation_is_refused_or_runs(any_bundle, data):
    manifest = json.loads((any_bundle / "edgeft.json").read_text())
    path = data.draw(st.sampled_from(_paths(manifest)), label="path")
    delete = data.draw(st.booleans(), label="delete")
    value = None if delete else data.draw(JSON, label="value")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(shutil.copytree(any_bundle, Path(tmp) / "b"))
        _edit(bundle, path, value, delete=delete)
        outcome(bundle, _items(bundle))


@PROPERTY
@given(data=st.data())
def test_any_golden_mutation_is_refused_or_runs(text_bundle, data):
    raw = (text_bundle / "golden.npz").read_bytes()
    kind = data.draw(st.sampled_from(["truncate", "flip", "structure"]), label="kind")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(shutil.copytree(text_bundle, Path(tmp) / "b"))
        if kind == "truncate":
            mutated = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif kind == "flip":
            at = data.draw(st.integers(0, len(raw) - 1))
            mutated = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1:]
        else:
            arrays = dict(np.load(text_bundle / "golden.npz"))
            key = data.draw(st.sampled_from(sorted(arrays)))
            arrays[key] = data.draw(st.sampled_from([arrays[key][:1], np.zeros(arrays[key].shape, np.float64),
                                                     np.zeros((2, 2, 2)), np.array(["x"] * 4)]))
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            mutated = buffer.getvalue()
        (bundle / "golden.npz").write_bytes(mutated)
        result = outcome(bundle, _items(bundle))
        if kind != "structure" and mutated != raw:
            assert result in ("refused", "ok")  # a byte changed inside a stored array's padding can be harmless


@PROPERTY
@given(data=st.data())
def test_any_zip_mutation_is_refused_or_runs(packaged, data):
    raw = packaged.read_bytes()
    kind = data.draw(st.sampled_from(["truncate", "flip", "entry"]), label="kind")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.zip"
        if kind == "truncate":
            path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
        elif kind == "flip":
            at = data.draw(st.integers(0, len(raw) - 1))
            path.write_bytes(raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1:])
        else:
            path.write_bytes(raw)
            name = data.draw(st.sampled_from(["../evil.txt", "/abs.txt", "sub/../../x", "c:evil", "deep/x.txt"]))
            with zipfile.ZipFile(path, "a") as archive:
                archive.writestr(name, b"x" * data.draw(st.integers(0, 64)))
        outcome(path, ["a match today"])


def test_the_memory_cap_catches_a_bomb():
    """The cap the properties run under does stop an allocation far beyond it."""
    with pytest.raises(MemoryError), memory_cap(2**30):
        bytearray(4 * 2**30)


def test_crc_helper_really_breaks_the_zip(packaged, tmp_path):
    broken = tmp_path / "b.zip"
    broken.write_bytes(_patch_headers(packaged.read_bytes(), "model.onnx", crc_xor=1))
    with zipfile.ZipFile(broken) as archive, pytest.raises(zipfile.BadZipFile):
        archive.read("model.onnx")
