"""Joint masked prediction pretraining (AV-HuBERT-style): masking, objective, clustering, training loop."""
