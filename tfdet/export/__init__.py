"""Export of detectors as SavedModels for TF Serving and TFMA."""

from tfdet.export.saved_model import export_saved_model

__all__ = ["export_saved_model"]
