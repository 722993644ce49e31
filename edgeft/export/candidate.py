"""What quantization's selection works with: a candidate (one recipe, built and measured), the
assessment of its logits against the budget, and a strategy's selection; ``select.py`` builds and
judges them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeft.errors import EdgeftError
from edgeft.export.config import QuantizeRecipe
from edgeft.export.preflight import TRY, Preflight
from edgeft.export.verify import Comparison

if TYPE_CHECKING:
    from edgeft.export.select import Judge


class AccuracyBudgetError(EdgeftError):
    """No recipe kept the accuracy within --max-accuracy-drop (exit 1; nothing written)."""

    def __init__(self, message: str, candidates: list["Candidate"]) -> None:
        super().__init__(message)
        self.candidates = candidates


@dataclass(frozen=True)
class Assessment:
    comparison: Comparison
    accuracy: float | None
    drop_points: float | None
    within_budget: bool

    def describe(self) -> str:
        return (f"accuracy {self.accuracy:.2%} (drop {self.drop_points:+.2f} pts)" if self.accuracy is not None
                else f"top-1 agreement {self.comparison.top1_agreement:.1%}")


@dataclass
class Candidate:
    """One recipe, built and measured."""

    recipe: QuantizeRecipe
    why: str = ""
    status: str = TRY  # TRY (may be kept) or MEASURE_ONLY (shown, never kept)
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    comparison: Comparison | None = None
    accuracy: float | None = None
    drop_points: float | None = None
    size_bytes: int | None = None
    latency_ms: float | None = None
    latency_p90_ms: float | None = None
    within_budget: bool = False
    chosen: bool = False
    cached: bool = False
    error: str | None = None
    verdict: str = ""
    seconds: float = 0.0
    confirmation: dict[str, Any] | None = None  # on the target's device (edgeft.export.device)
    logits: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def eligible(self) -> bool:
        return self.status == TRY and self.error is None and self.within_budget

    def describe(self) -> str:
        if self.error:
            return f"not built ({self.error})"
        acc = "" if self.accuracy is None else f", accuracy {self.accuracy:.2%} (drop {self.drop_points:+.2f} pts)"
        return (f"top-1 agreement {self.comparison.top1_agreement:.1%}, "  # type: ignore[union-attr]
                f"max abs diff {self.comparison.max_abs_diff:.3g}{acc}")  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.name, "status": self.status, "why": self.why, "within_budget": self.within_budget,
                "chosen": self.chosen, "accuracy": self.accuracy, "drop_points": self.drop_points,
                "size_bytes": self.size_bytes, "latency_ms": self.latency_ms, "latency_p90_ms": self.latency_p90_ms,
                "cached": self.cached, "error": self.error, "verdict": self.verdict, "seconds": round(self.seconds, 2),
                "nodes_excluded": self.info.get("nodes_excluded", []), "confirmation": self.confirmation,
                **(self.comparison.to_dict() if self.comparison else {})}


@dataclass
class Selection:
    """What a strategy built, what it kept and why."""

    strategy: str  # "fallbacks" or "fastest"
    candidates: list[Candidate]
    chosen: Candidate
    judge: "Judge"
    repair: dict[str, Any] | None
    seconds: float
    preflight: Preflight | None = None
    cautions: list[str] = field(default_factory=list)  # what the figures rest on too little of
