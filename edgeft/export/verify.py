"""Numerical checks of an exported graph: against PyTorch on held-out samples, and accuracy."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edgeft.backbones import Backbone
from edgeft.errors import EdgeftError
from edgeft.export.inputs import Feeds

FLOAT_TOLERANCE = 1e-4  # max abs logit difference of a float export from PyTorch


class ParityError(EdgeftError):
    """The float ONNX graph does not compute what the PyTorch model does (a bug: exit 1)."""


@dataclass(frozen=True)
class Comparison:
    """How an exported model's logits compare with reference logits on the same samples."""

    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(reference: np.ndarray, output: np.ndarray) -> Comparison:
    diff = np.abs(reference.astype(np.float64) - output.astype(np.float64))
    agree = float(np.mean(reference.argmax(-1) == output.argmax(-1)))
    return Comparison(len(reference), float(diff.max()), float(diff.mean()), agree)


def accuracy(logits: np.ndarray, labels: Sequence[int]) -> float:
    return float(np.mean(logits.argmax(-1) == np.asarray(labels)))


def session(path: str | Path, threads: int = 0, numerics: str = "host", custom_ops: str | None = None):
    """A CPU session; ``numerics="simulated"`` runs the graph with its int8 weights re-encoded so
    that this machine's kernels compute what exact int8 kernels compute (``edgeft.export.exact_int8``).
    ``custom_ops`` names the operator library an app model needs (``edgeft.runtime.app``)."""
    from edgeft.export.exact_int8 import exact_int8_model
    from edgeft.runtime.app import custom_ops_library
    from edgeft.runtime.sessions import open_session

    model = exact_int8_model(path) if numerics == "simulated" else path
    return open_session(model, threads, custom_ops_library=custom_ops_library(custom_ops))


def onnx_logits(path: str | Path, batches: Sequence[Feeds], numerics: str = "host", output: int = 0) -> np.ndarray:
    """Output ``output`` (the logits) of the ONNX graph at ``path`` for each batch of feeds, concatenated."""
    sess = session(path, numerics=numerics)
    names = {i.name for i in sess.get_inputs()}
    return np.concatenate([sess.run(None, {k: v for k, v in b.items() if k in names})[output] for b in batches])


@torch.no_grad()
def torch_logits(model: Backbone, batches: Sequence[Feeds]) -> np.ndarray:
    model = model.float().cpu().eval()
    return np.concatenate([model(**{k: torch.from_numpy(v) for k, v in b.items()}).float().numpy() for b in batches])


def check_parity(reference: np.ndarray, output: np.ndarray, tolerance: float = FLOAT_TOLERANCE) -> Comparison:
    """The float export against PyTorch: raises, naming the output and its difference, beyond ``tolerance``."""
    result = compare(reference, output)
    if not result.max_abs_diff <= tolerance or result.top1_agreement < 1.0:
        raise ParityError(
            f"the ONNX graph differs from PyTorch: output 'logits' max abs diff {result.max_abs_diff:.3g} "
            f"(tolerance {tolerance:g}), top-1 agreement {result.top1_agreement:.1%} on {result.samples} samples"
        )
    return result
