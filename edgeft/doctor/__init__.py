"""``edgeft doctor``: which quantization recipes run fast and exactly on a target, read where the
target is (this machine, an ssh device, QEMU). The recipes themselves, the measured selection and
its report belong to export (``edgeft.export.preflight``, ``.select``, ``.selection_report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgeft.export.preflight import Preflight, preflight

__all__ = ["Preflight", "diagnose", "preflight"]


def diagnose(source: str, target: str, log: Callable[[str], None] = lambda _: None) -> Preflight:
    """The preflight of ``source`` (a bundle, a run directory or a backbone name, exported to float
    first to read its operators) for ``target``."""
    from edgeft.doctor.target import target_cpu
    from edgeft.export.optimize import op_counts

    path = Path(source)
    if path.is_dir() and (path / "edgeft.json").is_file():
        from edgeft.manifest import read_manifest

        manifest = read_manifest(path)
        cpu, version, providers = target_cpu(target, path)
        return preflight(cpu, manifest.modality, op_counts(path / manifest.model_file), version, providers)
    from edgeft.export.convert import float_graph
    from edgeft.export.source import load_source
    from edgeft.outputs import scratch

    cpu, version, providers = target_cpu(target, None)
    exported = load_source(source, log)
    with scratch("doctor") as tmp:
        ops = op_counts(float_graph(exported.model, Path(tmp), "float", exported.modality))
    return preflight(cpu, exported.modality, ops, version, providers)
