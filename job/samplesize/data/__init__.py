"""The dataset: sources decoded into labelled images, and the prepared copy every trial loads.

Modules: `sources` (decode, folders, csv, tfds), `csv_source` (a labels CSV's rows, checked and resolved), `listing` (a dataset folder's files, links and odd
names), `prepared` (the prepared pool and test set in `cache/`, with the facts `plan` reads),
`verify` (the checks of a prepared copy on every open), `dataset_summary` (what `prepare` prints and stores
beside the copy), `augment` (the recipe's augmentation, applied once).
"""

from .prepared import (
                       PoolFacts,
                       PreparedDataset,
                       check_source_exists,
                       pool_facts_key,
                       prepare_dataset,
                       prepared_key,
                       read_pool_facts,
                       source_fingerprint,
                       split_test,
                       stored_summary,
)
from .dataset_summary import DatasetSummary
from .group_split import group_count
from .sources import LabelledImages, SkippedFiles, decode_image, load_source, open_source, scan_folder

__all__ = [
    "LabelledImages", "PoolFacts", "group_count", "check_source_exists", "PreparedDataset", "SkippedFiles", "decode_image", "load_source", "open_source",
    "pool_facts_key", "prepare_dataset", "prepared_key", "read_pool_facts", "scan_folder", "source_fingerprint",
    "split_test", "DatasetSummary", "stored_summary",
]
