"""Export: PyTorch to ONNX, graph optimisation, quantization, verification, and the bundle.

``export_bundle(ExportConfig(source="efficientnet_lite0", output="bundle", quantize="static",
calibration_data="photos/"))``.
"""

from edgeft.export.candidate import AccuracyBudgetError
from edgeft.export.config import CALIBRATION_METHODS, ExportConfig, QuantizeRecipe
from edgeft.export.pipeline import ExportResult, export_bundle

__all__ = ["CALIBRATION_METHODS", "AccuracyBudgetError", "ExportConfig", "ExportResult", "QuantizeRecipe", "export_bundle"]
