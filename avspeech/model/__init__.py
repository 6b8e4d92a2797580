"""The AV-HuBERT-style model: frontends, cross-modal fusion (``cross_attention``), encoder, heads."""
