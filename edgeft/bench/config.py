"""What ``edgeft bench`` measures: bundles, target, the sweep and how long to time each point."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeft.bench.targets import TargetOptions
from edgeft.errors import UsageError


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark. ``threads=()`` means every logical core of the target. Each point is timed
    for ``runs`` calls, or for ``min_time`` seconds, in ``rounds`` blocks interleaved across the
    bundles; ``warmup`` calls come first."""

    bundles: tuple[str, ...]
    target: str = "cpu"
    batch_sizes: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = ()
    seq_lengths: tuple[int, ...] = (128,)
    runs: int | None = None
    min_time: float = 1.0
    warmup: int = 10
    rounds: int = 5
    baseline: str | None = None
    reference: str | None = None
    inputs: str | None = None
    target_options: TargetOptions = field(default_factory=TargetOptions)

    def __post_init__(self) -> None:
        if not self.bundles:
            raise UsageError("give at least one BUNDLE")
        for name, values in (("--batch-sizes", self.batch_sizes), ("--threads", self.threads),
                             ("--seq-lengths", self.seq_lengths)):
            if any(v < 1 for v in values):
                raise UsageError(f"{name} must be positive integers, got {','.join(map(str, values))}")
        if not self.batch_sizes or not self.seq_lengths:
            raise UsageError("--batch-sizes and --seq-lengths need at least one value")
        if self.runs is not None and self.runs < 1:
            raise UsageError("--runs must be at least 1")
        if self.min_time <= 0 or self.warmup < 0 or self.rounds < 1:
            raise UsageError("--min-time must be positive, --warmup at least 0, --rounds at least 1")
        if self.baseline not in (None, "torch"):
            raise UsageError(f"--baseline {self.baseline!r}: the only baseline is 'torch'")

    @classmethod
    def quick(cls, bundles: tuple[str, ...], **changes: object) -> "BenchConfig":
        """A short run (about a second per bundle): the quickstart's, and the tests'."""
        return cls(bundles=bundles, **{"min_time": 0.5, "warmup": 5, "rounds": 3, **changes})  # type: ignore[arg-type]
