"""The one judge of golden vectors: the outputs a machine computes against those stored in the
bundle. ``edgeft verify``, ``EdgeModel.check_golden``, the bench's golden pass and its report all
decide and word it here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class GoldenCheck:
    """Golden inputs run somewhere: agreement with the stored outputs."""

    count: int
    max_abs_diff: float
    atol: float
    top1_agreement: float
    provider: str = ""

    @property
    def within_tolerance(self) -> bool:
        return self.max_abs_diff <= self.atol

    @property
    def ok(self) -> bool:
        """Every top-1 the same and every logit within the stored tolerance."""
        return self.within_tolerance and self.top1_agreement == 1.0

    def sentence(self) -> str:
        return (f"top-1 {self.top1_agreement:.0%} of {self.count}, max abs diff {self.max_abs_diff:.3g} "
                f"(tolerance {self.atol:.3g})")

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "max_abs_diff": self.max_abs_diff, "atol": self.atol,
                "top1_agreement": self.top1_agreement, "provider": self.provider, "ok": self.ok}

    @classmethod
    def from_report(cls, row: dict[str, Any]) -> "GoldenCheck":
        """A bench report's golden row (``samples``, ``max_abs_diff``, ``atol``, ``top1_agreement``)."""
        return cls(int(row["samples"]), float(row["max_abs_diff"]), float(row["atol"]), float(row["top1_agreement"]))


def judge_golden(got: np.ndarray, expected: np.ndarray, atol: float, top1: Sequence[int] | None = None,
                 provider: str = "") -> GoldenCheck:
    """``got`` against the stored ``expected`` logits; the top-1 against ``top1`` (the manifest's)
    or the stored logits' own. Outputs of another shape agree on nothing."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        return GoldenCheck(len(expected), float("inf"), float(atol), 0.0, provider)
    want = np.asarray(top1) if top1 is not None else expected.argmax(-1)
    return GoldenCheck(len(expected), float(np.abs(got - expected).max()), float(atol),
                       float(np.mean(got.argmax(-1) == want)), provider)
