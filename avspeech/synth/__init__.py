"""Synthetic talking-face corpus (see corpus.py)."""
