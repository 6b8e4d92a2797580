"""Triton kernels of avspeech, installed as ``avspeech.kernels``.

``cross_modal_attention`` runs the fused Triton kernel on CUDA (and on CPU under ``TRITON_INTERPRET=1``) and
the PyTorch reference elsewhere; ``cross_modal_attention_reference`` is that reference, the tests' oracle.
"""
from .cross_attention import cross_modal_attention
from .reference import cross_modal_attention_reference

__all__ = ["cross_modal_attention", "cross_modal_attention_reference"]
