"""Triton kernels of avspeech, installed as ``avspeech.kernels``.

``cross_modal_attention`` runs the fused Triton kernel on CUDA (and on CPU under ``TRITON_INTERPRET=1``) and
the PyTorch reference elsewhere, or the backend named by ``backend=`` (``"triton"``, ``"flex"``: FlexAttention,
``"reference"``; the default follows ``$AVSPEECH_ATTENTION``); ``cross_modal_attention_reference`` is that
reference, the tests' oracle.
``cross_modal_attention_one_way`` (and its reference) is one direction alone, computing nothing for the other.
"""
from .cross_attention import cross_modal_attention, cross_modal_attention_one_way
from .reference import cross_modal_attention_one_way_reference, cross_modal_attention_reference

__all__ = ["cross_modal_attention", "cross_modal_attention_one_way", "cross_modal_attention_one_way_reference",
           "cross_modal_attention_reference"]
