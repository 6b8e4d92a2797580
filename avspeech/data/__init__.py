"""Datasets over AV-HuBERT-style manifests: utterances, labels, length-bucketed batches."""
from avspeech.data.dataset import AVDataset, BucketBatchSampler, collate
from avspeech.data.manifest import Utterance, read_labels, read_manifest, write_labels

__all__ = ["AVDataset", "BucketBatchSampler", "collate", "Utterance", "read_manifest", "read_labels",
           "write_labels"]
