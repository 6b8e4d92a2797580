"""avspeech.pipeline: chunks and what they own, cross-fade stitching, word merge by time, the ROI file, provenance."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from avspeech.io.arrayfile import ArrayFile
from avspeech.pipeline import ChunkConfig, CrossFade, chunk_spans, merge_words, span_chunks
from avspeech.pipeline.provenance import synthetic_note, synthetic_only
from avspeech.recognition.tokenizer import CharTokenizer


def test_chunk_spans_and_owned_regions_closed_form():
    assert chunk_spans(23, 10, 3) == [(0, 10), (7, 17), (14, 23)]
    assert chunk_spans(10, 10, 3) == [(0, 10)]
    assert chunk_spans(5, 10, 3) == [(0, 5)]
    owned = [(c.own_start, c.own_end) for c in span_chunks(np.zeros((23, 96, 96), np.uint8), None, 10, 3)]
    assert owned == [(-math.inf, 8.5), (8.5, 15.5), (15.5, math.inf)]
    with pytest.raises(ValueError, match="at most half"):
        chunk_spans(23, 10, 6)
    with pytest.raises(ValueError, match="half the chunk"):
        ChunkConfig(chunk_seconds=2.0, overlap_seconds=1.5)
    assert ChunkConfig(20.0, 2.0).frames(25.0) == (500, 50)


def test_merge_words_keeps_each_word_from_the_chunk_owning_its_midpoint():
    w = lambda word, s, e: {"word": word, "start": s, "end": e}  # noqa: E731
    # chunk 0 covers 0-10 s and owns up to 9 s; chunk 1 covers 8-18 s and owns 9 s on
    c0 = [w("a", 1.0, 2.0), w("bo", 8.2, 9.6), w("x", 9.7, 10.0)]  # "bo" mid 8.9: chunk 0; "x" cut at 10 s: not kept
    c1 = [w("y", 8.0, 8.3), w("bo", 8.21, 9.6), w("c", 9.4, 9.8), w("d", 12.0, 12.5)]  # "y" a cut fragment: not kept
    got = merge_words([(-math.inf, 9.0, c0), (9.0, math.inf, c1)])
    assert got == [w("a", 1.0, 2.0), w("bo", 8.2, 9.6), w("c", 9.4, 9.8), w("d", 12.0, 12.5)]
    assert merge_words([(-math.inf, math.inf, c0)]) == c0


class _Scaled(torch.nn.Module):
    """Stands in for a separator whose output depends on the chunk: the mixture times (1 + mean lip value), so
    every chunk's estimate differs and the cross-fade weights show in the result."""

    def forward(self, mixture, lips, audio, lengths):
        return (mixture * (1.0 + lips.mean()))[:, None]


def _cross_fade_reference(audio: np.ndarray, rois: np.ndarray, chunk: int, overlap: int) -> np.ndarray:
    """Today's separate_span in float64, written independently: for every sample, the chunks covering it
    weighted 1 inside and (j + 1) / (ramp + 1) ramps over the overlaps, normalised by the summed weights."""
    from avspeech.features import LipTransform

    n, spf, ramp = len(rois), 640, overlap * 640
    num, den = np.zeros(n * spf), np.zeros(n * spf)
    s = 0
    while True:
        e = min(s + chunk, n)
        lips = LipTransform(train=False)(rois[s:e]).double()
        est = audio[s * spf:e * spf].astype(np.float64) * (1.0 + float(lips.mean()))
        w = np.ones((e - s) * spf)
        j = np.arange(ramp)
        if s > 0:
            w[:ramp] = (j + 1) / (ramp + 1)
        if e < n:
            w[len(w) - ramp:] = 1 - (j + 1) / (ramp + 1)
        num[s * spf:e * spf] += w * est
        den[s * spf:e * spf] += w
        if e == n:
            return num / den
        s += chunk - overlap


@pytest.mark.parametrize("frames", [7, 23, 61])
def test_separation_through_the_pipeline_is_todays_cross_fade(frames, tmp_path):
    from avspeech.separation.separate import separate_span

    rng = np.random.default_rng(frames)
    audio = rng.standard_normal(frames * 640).astype(np.float32)
    rois = rng.integers(0, 255, (frames, 96, 96), dtype=np.uint8)
    store = ArrayFile((96, 96), np.uint8, frames, tmp_path)  # the ROIs as the streamed pipeline holds them
    for i, r in enumerate(rois):
        store[i] = r
    want = _cross_fade_reference(audio, rois, 10, 3)
    for source in (rois, store):
        out = separate_span(_Scaled(), audio, source, chunk_frames=10, overlap_frames=3)
        assert out.dtype == np.float32 and out.shape == audio.shape
        np.testing.assert_allclose(out, want, rtol=2e-6, atol=2e-6)
    store.close()


def test_cross_fade_rejects_a_wrong_length():
    fade = CrossFade(10, 2)
    (c,) = list(span_chunks(np.zeros((10, 96, 96), np.uint8), np.zeros(6400, np.float32), 10, 2))
    with pytest.raises(ValueError, match="estimate"):
        fade.add(c, np.zeros(100, np.float32))


def test_roi_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rois = rng.integers(0, 255, (9, 96, 96), dtype=np.uint8)
    f = ArrayFile((96, 96), np.uint8, 9, tmp_path)
    for i in (3, 0, 8, 1, 2, 4, 5, 6, 7):  # any order
        f[i] = rois[i]
    assert len(f) == 9
    np.testing.assert_array_equal(f[2:7], rois[2:7])
    np.testing.assert_array_equal(np.asarray(f), rois)
    assert f[5:2].shape == (0, 96, 96)
    with pytest.raises(IndexError):
        f[9] = rois[0]
    f.close()


# --- recognition across chunk boundaries -------------------------------------------------------------------------

CHARS = " 'abcdefghijklmnopqrstuvwxyz"
FRAMES_PER_CHAR = 2  # each character lasts 2 frames, then 1 blank frame (so repeated letters stay apart)


def _layout(sentence: str, lead: int = 5, n: int = 170) -> tuple[np.ndarray, list[dict]]:
    """Per-frame labels (n,) spelling ``sentence`` (0 = blank) and its words with closed-form times: a word
    spans from its first character's first frame to the end of its last character's frames."""
    tok = CharTokenizer(CHARS)
    labels = np.zeros(n, np.int64)
    words, t = [], lead
    for k, word in enumerate(sentence.split(" ")):
        if k:
            labels[t:t + FRAMES_PER_CHAR] = tok.index[" "]
            t += FRAMES_PER_CHAR + 1
        t0 = t
        for ch in word:
            labels[t:t + FRAMES_PER_CHAR] = tok.index[ch]
            t += FRAMES_PER_CHAR + 1
        words.append({"word": word, "start": round(t0 / 25, 3), "end": round((t - 1) / 25, 3)})
    assert t <= n
    return labels, words


class _LocalRecognizer(torch.nn.Module):
    """Stands in for a recognizer with a receptive field of one frame: each frame's ROI is a flat grey level
    that spells a label (level = 8 * label), read back from the normalised lips; the CTC posteriors put
    almost all mass on that label. Its transcript of a span is the same in any chunk that holds a whole word,
    and a cut through a word splits it, so only the merge by time decides what a chunked decode gives."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.tokenizer = CharTokenizer(CHARS)
        self.cfg = SimpleNamespace(upsample=1)
        self.decoder = None
        from avspeech.features import LipTransform

        grey = np.stack([np.full((96, 96), 8 * k, np.uint8) for k in range(len(CHARS) + 1)])
        self.levels = LipTransform(train=False)(grey).reshape(len(grey), -1).mean(-1)  # (V,) what each label looks like

    def encode(self, lips, audio, lengths, has_audio, has_video):
        seen = lips[:, 0].mean(dim=(2, 3))  # (B, T)
        labels = (seen[..., None] - self.levels).abs().argmin(-1)
        logp = torch.log_softmax(20.0 * torch.nn.functional.one_hot(labels, len(CHARS) + 1).float(), -1)
        return None, logp, lengths


def _span(sentence: str):
    labels, words = _layout(sentence)
    rois = (8 * labels).astype(np.uint8)[:, None, None].repeat(96, 1).repeat(96, 2)
    audio = np.zeros(len(labels) * 640, np.float32)
    return rois, audio, words


def test_a_sentence_across_chunk_boundaries_transcribes_as_with_one_chunk():
    from avspeech.recognition.recognize import recognize_span
    from avspeech.recognition.transcribe import DecodeOptions

    model, options = _LocalRecognizer(), DecodeOptions(greedy=True)
    sentence = "place red with eight please bin blue at u six soon"
    rois, audio, words = _span(sentence)
    n = len(rois)
    one = recognize_span(model, rois, audio, "av", options, chunk_frames=n, overlap_frames=0)
    assert one["text"] == sentence and one["words"] == words  # the stand-in reads the layout back exactly
    chunk, overlap = 50, 24  # chunks every 26 frames, each owning 12 past its cuts; words are at most 17 frames
    cuts = [(s + e) / 2 / 25 for (s, _), (_, e) in zip(chunk_spans(n, chunk, overlap)[1:], chunk_spans(n, chunk,
                                                                                                        overlap))]
    inside = [c for c in cuts if any(w["start"] < c < w["end"] for w in words)]
    assert len(inside) >= 2, (cuts, words)  # the owned-region boundaries fall inside words of the sentence
    merged = recognize_span(model, rois, audio, "av", options, chunk_frames=chunk, overlap_frames=overlap)
    assert merged["text"] == one["text"] and merged["words"] == one["words"]
    assert len(merged["ctc_logp"]) == len(chunk_spans(n, chunk, overlap))
    # the same cuts without overlap (the old hard cut) break the words that straddle them
    hard = recognize_span(model, rois, audio, "av", options, chunk_frames=chunk - overlap // 2, overlap_frames=0)
    assert hard["text"] != one["text"]


def test_shipped_checkpoints_say_they_know_synthetic_speech_only(tmp_path):
    from avspeech.recognition.recognize import default_checkpoint as rec
    from avspeech.separation.separate import default_checkpoint as sep

    for ck in (sep(), rec()):
        assert synthetic_only(ck)
        assert "synthetic speech only" in synthetic_note(ck, "x")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "config.json").write_text('{"kind": "separation"}')
    assert not synthetic_only(other) and synthetic_note(other, "x") is None
    (other / "config.json").write_text('{"kind": "separation", "recipe": {"trained_on_synthetic_only": true}}')
    assert synthetic_only(other)


def test_array_file_append_take_and_errors(tmp_path):
    """Landmark rows as the tracker logs them: appended, read back one at a time and by slices, exactly;
    pre-sized rows never written read as zeros; wrong shapes are refused."""
    rng = np.random.default_rng(1)
    rows = rng.normal(500, 200, (11, 468, 2))
    with ArrayFile((468, 2), np.float64, folder=tmp_path) as f:
        assert [f.append(r) for r in rows] == list(range(11))
        assert f.shape == (11, 468, 2) and len(f) == 11
        np.testing.assert_array_equal(f[4], rows[4])
        np.testing.assert_array_equal(f[-1], rows[10])
        np.testing.assert_array_equal(f[2:9], rows[2:9])
        with pytest.raises(ValueError, match="shape"):
            f.append(rows[0, :5])
        with pytest.raises(TypeError, match="row number or a slice"):
            f[:, 3]
        with pytest.raises(IndexError):
            f[11]
    g = ArrayFile((3,), np.float32, 4, tmp_path)
    g[1] = [1, 2, 3]
    g[-1] = [4, 5, 6]  # negative rows count from the end, as when reading
    np.testing.assert_array_equal(np.asarray(g), [[0, 0, 0], [1, 2, 3], [0, 0, 0], [4, 5, 6]])
    with pytest.raises(TypeError):
        g[True]
    g.close()
    from avspeech.io.arrayfile import TempArrays

    with TempArrays() as store:  # the files of one piece of work, all closed when it ends, error or not
        made = [store((5, 2), np.float64), store((7,), np.float32)]
        assert [m.shape for m in made] == [(5, 2), (7,)]
    assert all(m._file.closed for m in made)
    with ArrayFile((), np.float32, 3, tmp_path) as w:  # 1-D: a sample per row
        w[0] = 0.5
        w[1:3] = [1.5, 2.5]
        assert w.append(3.5) == 3
        np.testing.assert_array_equal(np.asarray(w), [0.5, 1.5, 2.5, 3.5])



def test_voice_on_disk_placed_on_the_timeline_writes_the_same_files(tmp_path):
    """What ``separate`` writes per face: the voice cross-faded into a 1-D ArrayFile, placed on the clip's
    timeline without building it (OnTimeline), written a block at a time: the same samples as the float32 array
    built whole, and byte-identical wav and mp4 files (write_wav and VideoWriter read it by slices)."""
    from avspeech.io.media import VideoWriter, write_wav
    from avspeech.pipeline.stitch import OnTimeline
    from avspeech.separation.separate import Speaker

    rng = np.random.default_rng(7)
    frames, start, total = 23, 9, 40
    est = [rng.uniform(-1.2, 1.2, c.num_frames * 640).astype(np.float32)
           for c in span_chunks(np.zeros((frames, 96, 96), np.uint8), np.zeros(frames * 640, np.float32), 10, 3)]
    fades = []
    for out in (None, ArrayFile((), np.float32, frames * 640, tmp_path)):
        fade = CrossFade(frames, 3, out)
        chunks = span_chunks(np.zeros((frames, 96, 96), np.uint8), np.zeros(frames * 640, np.float32), 10, 3)
        for c, e in zip(chunks, est):
            fade.add(c, e)
        fades.append(fade.out)
    in_memory, on_disk = fades
    np.testing.assert_array_equal(np.asarray(on_disk), in_memory)
    whole = np.zeros(total * 640, np.float32)  # the timeline built the plain way
    whole[start * 640:(start + frames) * 640] = in_memory
    placed = OnTimeline(on_disk, start * 640, total * 640)
    assert len(placed) == whole.size
    for a, b in ((0, 100), (start * 640 - 5, start * 640 + 7), (1000, 30000), (total * 640 - 3, total * 640 + 9)):
        np.testing.assert_array_equal(placed[a:b], whole[a:b])
    np.testing.assert_array_equal(np.asarray(placed), whole)
    spk = Speaker(0, start, start + frames, [0, 0, 1, 1], on_disk)
    np.testing.assert_array_equal(np.asarray(spk.full(total)), whole)
    ref = 10 * np.log10(np.mean(in_memory.astype(np.float64) ** 2) + 1e-12)
    assert abs(spk.level_dbfs() - ref) < 1e-9
    blank = np.full((total, 32, 32, 3), 90, np.uint8)
    for name, audio in (("array", whole), ("timeline", placed)):
        write_wav(tmp_path / f"{name}.wav", audio)
        with VideoWriter(tmp_path / f"{name}.mp4", 32, 32, 25, audio=audio) as w:
            for f in blank:
                w.write(f)
    assert (tmp_path / "array.wav").read_bytes() == (tmp_path / "timeline.wav").read_bytes()
    assert (tmp_path / "array.mp4").read_bytes() == (tmp_path / "timeline.mp4").read_bytes()
    with pytest.raises(ValueError, match="does not fit"):
        OnTimeline(on_disk, (total - 1) * 640, total * 640)
    with pytest.raises(ValueError, match="out holds"):
        CrossFade(frames, 3, np.zeros(10, np.float32))
    on_disk.close()


def test_array_file_out_of_disk_names_the_folder_and_the_fix(tmp_path):
    """A temporary file that cannot grow (here a file-size limit, as a full disk would) gives an error naming
    the folder and TMPDIR, not a bare errno (run in a child: the limit is per process)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f'''
        import resource, signal
        import numpy as np
        from avspeech.io.arrayfile import ArrayFile
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        f = ArrayFile((468, 2), np.float64, folder={str(tmp_path)!r})
        try:
            for _ in range(100):
                f.append(np.zeros((468, 2)))
        except OSError as e:
            print("ERROR", e)
    ''')
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "ERROR" in res.stdout and str(tmp_path) in res.stdout and "TMPDIR" in res.stdout, res.stdout
