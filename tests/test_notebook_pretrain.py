"""notebooks/02_pretrain.ipynb runs top to bottom with tiny settings."""


def test_pretrain_notebook_runs(execute_notebook):
    nb = execute_notebook("02_pretrain.ipynb", CLIPS=4, CLUSTERS=8, STEPS=3)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "face tracks" in text and "phone purity" in text
