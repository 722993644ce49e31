"""The quantization doctor: which recipes run fast and exactly on a target (preflight), which
variant to keep (``--quantize auto``: measured candidates, sensitivity repair) and why (report)."""

from edgeft.doctor.preflight import Preflight, preflight

__all__ = ["Preflight", "preflight"]
