"""``edgeft bench``: time bundles on a target, side by side, and write comparable reports.

Imports the runtime and the standard library; torch only in the PyTorch baseline's own process.
"""

from edgeft.bench.config import BenchConfig
from edgeft.bench.driver import BenchInterrupted, run_bench
from edgeft.bench.targets import TargetOptions

__all__ = ["BenchConfig", "BenchInterrupted", "TargetOptions", "run_bench"]
