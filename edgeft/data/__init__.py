"""Read user datasets (image folders, CSV/JSONL text) into deterministic train/val splits."""

from edgeft.data.dataset import Dataset, DatasetSplits
from edgeft.data.loading import load_dataset, sample_data_path

__all__ = ["Dataset", "DatasetSplits", "load_dataset", "sample_data_path"]
