"""The sequence reader's pieces: strip preprocessing, CTC decoding and scoring, the two readers' decision."""

import itertools
import math

import cv2
import numpy as np
import pytest

from formdigits.decide import agreement, cut_probability, decide
from formdigits.preprocess import StripParams, preprocess_strip, strip_batch
from formdigits.sequence import Reading, greedy, label_probabilities, label_probability


def test_a_strip_is_cut_to_its_ink_scaled_to_the_height_and_padded():
    strip = np.zeros((50, 200), np.uint8)
    strip[10:30, 40:120] = 200  # ink 20 rows x 80 columns, not at full strength
    x = preprocess_strip(strip, StripParams(height=32, pad=2))
    assert x.shape == (32, 2 + 112 + 2)  # 20 rows -> 28: the 80 columns -> 112
    assert x.dtype == np.float32 and x.max() == pytest.approx(1.0)  # contrast stretched
    rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (2, 29, 2, 113)


def test_a_narrow_strip_is_padded_to_a_square_and_a_long_one_squeezed():
    one = np.zeros((40, 10), np.uint8)
    one[5:35, 4:6] = 255
    assert preprocess_strip(one).shape == (32, 32)
    long = np.full((10, 2000), 255, np.uint8)
    assert preprocess_strip(long, StripParams(max_width=300)).shape == (32, 300)
    assert not preprocess_strip(np.full((10, 10), 20, np.uint8)).any()  # too faint: blank
    with pytest.raises(ValueError, match="uint8"):
        preprocess_strip(np.zeros((10, 10), np.float32))


def test_wide_gaps_between_inks_are_closed_up():
    """An empty comb cell between two digits leaves a gap far wider than a writer's: closed to 0.6 x height."""
    strip = np.zeros((20, 100), np.uint8)
    strip[:, 0:10] = strip[:, 70:80] = 255  # 20 rows of ink, 60 empty columns between
    x = preprocess_strip(strip, StripParams(height=24, pad=2, max_gap=0.6))
    cols = x.any(0)
    assert x.shape == (24, 2 + 32 + 2)  # 10 + 12 + 10 columns, scaled by 20/20 -> 1
    assert cols[2:12].all() and not cols[12:24].any() and cols[24:34].all()


def test_strips_batch_to_the_widest_rounded_up():
    batch, widths = strip_batch([np.ones((32, 33), np.float32), np.ones((32, 41), np.float32)])
    assert batch.shape == (2, 1, 32, 44) and widths.tolist() == [33, 41]
    assert batch[0, 0, :, 33:].sum() == 0  # paper on the right


def frames(*rows):
    """Per-frame probabilities over the classes 0-9 and blank, from {class: p} dicts (blank takes the rest)."""
    out = np.zeros((len(rows), 11), np.float32)
    for t, row in enumerate(rows):
        for k, p in row.items():
            out[t, k] = p
        out[t, 10] = 1 - sum(row.values())
    return out


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    f = frames({1: 0.9}, {1: 0.8}, {}, {1: 0.7}, {2: 0.6}, {})
    text, probs = greedy(f)
    assert text == "112"
    assert probs == pytest.approx((0.9, 0.7, 0.6))  # each digit's best frame


def brute_force(f, text):
    """P(text) by summing over every frame path that collapses to it."""
    total = 0.0
    for path in itertools.product(range(11), repeat=len(f)):
        collapsed = [k for k, _ in itertools.groupby(path) if k != 10]
        if "".join(str(k) for k in collapsed) == text:
            total += math.prod(f[t, k] for t, k in enumerate(path))
    return total


@pytest.mark.parametrize("text", ["", "3", "33", "34", "343", "4"])
def test_label_probability_is_the_sum_over_every_alignment(text):
    rng = np.random.default_rng(len(text))
    f = rng.dirichlet(np.ones(11) * 0.3, size=4).astype(np.float64)
    f[:, [3, 4]] += 0.3  # make 3s and 4s likely enough to matter
    f /= f.sum(1, keepdims=True)
    assert label_probability(f, text) == pytest.approx(brute_force(f, text), rel=1e-6)


def test_many_readings_scored_together_score_as_each_alone():
    rng = np.random.default_rng(7)
    cases = [(rng.dirichlet(np.ones(11) * 0.3, size=t), text)
             for t, text in [(4, "34"), (1, ""), (6, "3"), (2, "11"), (4, "1234"), (3, "x"), (4, "907")]]  # fmt: skip
    together = label_probabilities([f for f, _ in cases], [text for _, text in cases])
    alone = [brute_force(f, text) if text != "x" else 0.0 for f, text in cases]
    assert together == pytest.approx(alone, rel=1e-6, abs=1e-300)
    assert together[3] == 0.0 and together[5] == 0.0  # "11" in 2 frames; a reading that is not digits
    assert label_probabilities([], []) == [] and label_probabilities([cases[1][0]], [""]) == [pytest.approx(alone[1])]


def test_a_reading_too_long_for_the_frames_has_no_probability():
    assert label_probability(frames({1: 1.0}, {}), "11") == 0.0  # "11" needs a blank between: 3 frames


def reading(text, p, frames_=None):
    f = frames_ if frames_ is not None else frames(*[{int(c): 0.98} for c in text])
    return Reading(text, p, tuple([0.99] * len(text)), f)


def onehot(text, p=0.95):
    return [np.eye(11)[int(c)] * p + (1 - p) / 11 for c in text]


def test_agreement_weighs_both_readers_and_their_shared_mistakes():
    assert agreement(0.9, 0.9, k=1) == pytest.approx(0.81 / (0.81 + 0.01))  # independent readers
    assert agreement(0.5, 0.5, k=1) == pytest.approx(0.5)
    assert agreement(0.9, 0.9, k=10) == pytest.approx(0.81 / (0.81 + 0.1))
    assert agreement(0.99, 0.2) < 0.99  # a doubtful second reader lowers it
    assert agreement(0.95, 0.95) > 0.9  # two sure readers: accepted at the default


def test_readers_that_agree_accept_and_drop_the_doubts_agreement_answers():
    notes = ["mark 2: not a digit", "ink crosses the box line and was left out"]
    seq = reading("1234", 0.97)
    value, conf, confs, left = decide("1234", [0.99] * 4, onehot("1234"), notes, seq, wide=reading("1234", 0.9))
    assert value == "1234" and conf == pytest.approx(agreement(0.99**4, 0.97)) and left == []
    # the left-out ink reads as another value: it could change the reading, so the field is checked
    _, _, _, left = decide("1234", [0.99] * 4, onehot("1234"), notes, seq, wide=reading("12345", 0.9))
    assert left == ["ink crosses the box line and was left out"]


def test_readers_that_disagree_give_the_likelier_reading_for_review():
    # the cutting reader lost a digit (two touching digits read as one mark); the sequence reader read all
    seq_frames = frames({4: 0.97}, {}, {7: 0.97}, {}, {1: 0.95}, {})
    mark = np.full(11, 0.02)
    mark[1], mark[10] = 0.2, 0.62  # read as no digit, a 1 next likeliest
    value, conf, confs, notes = decide("47", [0.99, 0.98], onehot("47") + [mark], ["mark 3: not a digit"],
                                       reading("471", 0.9, seq_frames))  # fmt: skip
    assert value == "471" and notes[-1] == "readers disagree: cut 47, sequence 471"
    assert 0 < conf < 0.9
    # a sure cut against a doubtful sequence reading of the same length: the cut wins
    seq_frames = frames({5: 0.5, 6: 0.45}, {}, {8: 0.97}, {})
    value, _, confs, _ = decide("58", [0.99, 0.99], onehot("58", 0.99), [], reading("68", 0.45, seq_frames))
    assert value == "58" and confs == [0.99, 0.99]


def test_cut_probability_scores_a_reading_digit_by_digit():
    rows = onehot("12", 0.9)
    assert cut_probability(rows, "12") == pytest.approx(rows[0][1] * rows[1][2])
    assert cut_probability(rows, "123") == pytest.approx(0.01)  # a cut it did not make


def test_marks_only_stay_a_mark_for_review():
    value, conf, confs, notes = decide("", [], [], ["mark 1: not a digit"], reading("", 0.9, frames({}, {})))
    assert (value, conf, confs, notes) == ("", 0.0, [], ["mark 1: not a digit"])


def test_a_drawn_strip_reads_through_the_onnx_reader(tmp_path, mnist_dir):
    """A tiny training run, exported: the ONNX reader gives what PyTorch gives, through the same preprocessing."""
    torch = pytest.importorskip("torch")
    from formdigits.sequence import StripReader
    from formdigits.train.seqloop import StripTrainConfig, train_strips
    from formdigits.train.seqmodel import StripConfig, StripNet

    metrics = train_strips(tmp_path, mnist_dir, StripTrainConfig(steps=3, batch_size=8, val_size=20, save_every=3,
                                                                   workers=0), download=False, progress=False)  # fmt: skip
    assert metrics["strings"] == 20 and 0 <= metrics["string_accuracy"] <= 1
    reader = StripReader(tmp_path / "strip-reader.onnx", threads=1)
    strip = np.zeros((60, 150), np.uint8)
    cv2.putText(strip, "305", (5, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 255, 4)
    (r,) = reader.read([strip])
    ckpt = torch.load(tmp_path / "strip-checkpoint.pt", weights_only=True)
    model = StripNet(StripConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    x, widths = strip_batch([preprocess_strip(strip)])  # padded alike: the LSTM reads the padding too
    expected = model.eval()(torch.from_numpy(x)).softmax(-1)[0].detach().numpy()[: widths[0] // 4]
    assert r.frames.shape == expected.shape == (widths[0] // 4, 11)
    assert np.abs(r.frames - expected).max() < 1e-4
    assert r.probability == pytest.approx(label_probability(expected, r.text), rel=1e-3)


def test_ink_read_as_digits_is_never_given_up_for_an_empty_reading():
    value, conf, confs, notes = decide("12", [0.9, 0.9], onehot("12"), [], reading("", 0.99, frames({}, {}, {})))
    assert value == "12" and conf < 0.01 and notes == ["readers disagree: cut 12, sequence -"]
