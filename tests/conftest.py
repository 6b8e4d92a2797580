"""Shared test helpers.

``execute_notebook(path, **overrides)`` runs a notebook of ``notebooks/`` top to bottom with nbclient in a
temporary folder. Each notebook has one code cell tagged ``parameters`` (sizes, paths); the overrides are
injected as a cell right after it, so the test suite runs the same notebook a user reads, with tiny settings.
"""
from __future__ import annotations

import os

# No NVIDIA driver: run the Triton kernels in the interpreter on the CPU. Must be set before triton is imported.
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _attention_backend(request, monkeypatch):
    """Model and training tests run cross-modal attention through its PyTorch reference (the interpreter is
    for the kernel's own tests, test_cross_attention*.py, and is far too slow for training)."""
    if not Path(str(request.node.fspath)).name.startswith("test_cross_attention"):
        monkeypatch.setenv("AVSPEECH_ATTENTION", "reference")


@pytest.fixture
def execute_notebook(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    def run(name: str, timeout: int = 600, **overrides):
        nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
        idx = next((i for i, c in enumerate(nb.cells)
                    if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])), None)
        assert idx is not None, f"{name} has no code cell tagged 'parameters'"
        if overrides:
            src = "\n".join(f"{k} = {v!r}" for k, v in overrides.items())
            nb.cells.insert(idx + 1, nbformat.v4.new_code_cell(src))
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        return nb

    return run


# A small synthetic two-speaker corpus, made once per test session and shared by every stage's tests
# (synth, preprocess, features, heads). Read-only: copy it before changing anything.
SYNTH_2SPK = dict(speakers=2, seed=7, clips=3)


@pytest.fixture(scope="session")
def synth_corpus_2spk(tmp_path_factory):
    from avspeech.synth.corpus import SynthConfig, synthesize_corpus

    out = tmp_path_factory.mktemp("synth_2spk")
    made, failures, _ = synthesize_corpus(out, SynthConfig(speakers=SYNTH_2SPK["speakers"],
                                                           seed=SYNTH_2SPK["seed"]),
                                          SYNTH_2SPK["clips"], workers=2)
    assert not failures, failures
    return out
