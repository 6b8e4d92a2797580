"""Real datasets in AV-HuBERT's layout: LRS3, LRS2 and VoxCeleb2 read from their folders, preprocessed and
written as manifests (``avspeech prepare``)."""
