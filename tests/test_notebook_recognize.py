"""notebooks/05_recognize.ipynb runs top to bottom on a short synthetic clip (here with a small untrained
checkpoint, so the suite does not depend on the one that ships; the notebook's default is the shipped one), and
its lip-reading section on a fake small official AV-HuBERT file."""
import torch


def test_recognize_notebook_runs(execute_notebook, tmp_path):
    from avspeech.model.checkpoint import save_checkpoint
    from avspeech.recognition.model import AVRecognizer, RecognizerConfig

    torch.manual_seed(0)
    cfg = RecognizerConfig(decoder_layers=1, decoder_dim=32, decoder_heads=4, decoder_ffn=64)
    ck = tmp_path / "rec"
    save_checkpoint(ck, AVRecognizer(cfg), {"kind": "recognition", "recognizer": cfg.to_dict()})
    from avhubert_seq2seq import write_finetuned

    write_finetuned(tmp_path / "vsr.pt", modalities=("video",))  # a fake small official lip-reading model
    nb = execute_notebook("05_recognize.ipynb", SEED=11, CHECKPOINT=str(ck), AVHUBERT=str(tmp_path / "vsr.pt"))
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "speaker_0" in text and "speaker_1" in text and "WER" in text
    assert "modes ('video',), decoder 2 layers x 32" in text and "timestamps: segment" in text
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
