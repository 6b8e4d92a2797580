"""notebooks/04_separate.ipynb runs top to bottom on a short synthetic clip with the checkpoint that ships."""


def test_separate_notebook_runs(execute_notebook):
    nb = execute_notebook("04_separate.ipynb", SEED=11)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "SI-SDRi" in text and "speaker_1" in text
