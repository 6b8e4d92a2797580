"""Triton kernels of avspeech, installed as ``avspeech.kernels``."""
