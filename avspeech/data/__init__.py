"""Files on disk (:mod:`avspeech.data.layout`: manifests, labels, transcripts, mixture lists, clip records) and
datasets over AV-HuBERT-style manifests: utterances, labels, length-bucketed batches."""
from avspeech.data.dataset import AVDataset, BucketBatchSampler, collate
from avspeech.data.layout import Utterance, read_labels, read_manifest, write_labels

__all__ = ["AVDataset", "BucketBatchSampler", "collate", "Utterance", "read_manifest", "read_labels",
           "write_labels"]
