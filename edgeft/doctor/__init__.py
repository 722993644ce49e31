"""``edgeft doctor``: which quantization recipes run fast and exactly on a target, read where the
target is (this machine, an ssh device, QEMU). The recipes themselves, the measured selection and
its report belong to export (``edgeft.export.preflight``, ``.select``, ``.selection_report``)."""

from edgeft.export.preflight import Preflight, preflight

__all__ = ["Preflight", "preflight"]
