"""Tests of :mod:`ecgbook.plot`: every figure is drawn from real PhysioNet records of the mirror.

Classifier outputs for the ROC, confusion, training-curve and metric-bar figures come from a small
logistic regression on real MIT-BIH beats (record 208: N, S, V, F and Q beats), trained on the second
half of the record and scored on the first half (which holds no S and no Q beat: those classes have no ROC
curve there, exercising the skipped-class path).
"""
from __future__ import annotations

import numpy as np
import pytest
import wfdb
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

from ecgbook.data import read_record
from ecgbook.plot import (BEAT_COLOURS, LAYOUT_12, MM_PER_MV, MM_PER_S, plot_confusion, plot_ecg_12lead,
                          plot_metric_bars, plot_rhythm_strip, plot_roc_curves, plot_spectrogram,
                          plot_training_curves)
from ecgbook.signal import bandpass, spectrogram

PTBXL = "physionet.org/files/ptb-xl/1.0.3/records100/00000/00001_lr"
MITDB = "physionet.org/files/mitdb/1.0.0"
#: MIT-BIH beat symbols → AAMI EC57 classes (non-beat annotations are absent and ignored).
AAMI = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"), **dict.fromkeys("VE", "V"),
        "F": "F", **dict.fromkeys("/fQ", "Q")}
CLASSES = ["N", "S", "V", "F", "Q"]


def _save(fig, tmp_path, name):
    assert isinstance(fig, Figure)
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000
    return path


def _spacing(locs):
    return np.round(np.diff(np.asarray(locs)), 6)


@pytest.fixture(scope="module")
def ptbxl(mirror):
    return read_record(mirror / PTBXL)


@pytest.fixture(scope="module")
def mitdb100(mirror):
    rec = read_record(mirror / MITDB / "100")
    return rec, wfdb.rdann(str(mirror / MITDB / "100"), "atr")


@pytest.fixture(scope="module")
def beats208(mirror):
    """Features of every beat of MIT-BIH 208: RR intervals and the QRS region of lead MLII."""
    rec = read_record(mirror / MITDB / "208")
    ann = wfdb.rdann(str(mirror / MITDB / "208"), "atr")
    x = bandpass(rec.signal[0], rec.fs)
    keep = np.array([s in AAMI for s in ann.symbol])
    samples, labels = ann.sample[keep], np.array([AAMI[s] for s in np.array(ann.symbol)[keep]])
    rr = np.diff(samples) / rec.fs
    inner = slice(1, len(samples) - 1)
    pre, post = rr[:-1], rr[1:]
    local = np.convolve(rr, np.ones(10) / 10, mode="same")[:-1]
    idx = samples[inner][:, None] + np.arange(-90, 90, 6)[None, :]
    ok = (idx[:, 0] >= 0) & (idx[:, -1] < x.size)
    wave = x[np.clip(idx, 0, x.size - 1)]
    feats = np.column_stack([pre, post, pre / local, wave])[ok]
    y = labels[inner][ok]
    half = len(y) // 2
    scaler = StandardScaler().fit(feats[half:])
    return scaler.transform(feats[half:]), y[half:], scaler.transform(feats[:half]), y[:half]


@pytest.fixture(scope="module")
def scores208(beats208):
    x_tr, y_tr, x_te, y_te = beats208
    clf = LogisticRegression(max_iter=500).fit(x_tr, y_tr)
    proba = clf.predict_proba(x_te)
    score = np.zeros((len(y_te), len(CLASSES)))
    for k, c in enumerate(clf.classes_):
        score[:, CLASSES.index(c)] = proba[:, k]
    onehot = (y_te[:, None] == np.array(CLASSES)[None, :]).astype(int)
    return onehot, score, y_te, clf.classes_[proba.argmax(axis=1)]


# ---------------------------------------------------------------- ECG paper

def _check_paper(ax):
    """1 mm grid (0.04 s × 0.1 mV), 5 mm grid (0.2 s × 0.5 mV), drawn, at 25 mm/s and 10 mm/mV."""
    fig = ax.figure
    fig.canvas.draw()
    for axis, (lo, hi), minor, major in ((ax.xaxis, ax.get_xlim(), 0.04, 0.2), (ax.yaxis, ax.get_ylim(), 0.1, 0.5)):
        def inside(locs):
            locs = np.round(np.asarray(locs), 6)
            return locs[(locs >= lo - 1e-9) & (locs <= hi + 1e-9)]
        major_locs = inside(axis.get_majorticklocs())
        assert set(_spacing(major_locs)) == {major}
        # matplotlib leaves out minor ticks that coincide with major ones: together, every 1 mm.
        both = np.union1d(inside(axis.get_minorticklocs()), major_locs)
        assert set(_spacing(both)) == {minor}
        assert all(t.gridline.get_visible() for t in axis.get_major_ticks())  # both grids are drawn
        assert all(t.gridline.get_visible() for t in axis.get_minor_ticks())
    assert ax.get_aspect() == pytest.approx(MM_PER_MV / MM_PER_S)
    # True paper scale: 25 mm per second and 10 mm per mV on the figure.
    box = ax.get_position()
    w_mm, h_mm = box.width * fig.get_figwidth() * 25.4, box.height * fig.get_figheight() * 25.4
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert w_mm / (x1 - x0) == pytest.approx(MM_PER_S, rel=1e-3)
    assert h_mm / (y1 - y0) == pytest.approx(MM_PER_MV, rel=1e-3)


def _traces(ax):
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_ecg_12lead_standard_layout(ptbxl, tmp_path):
    rec = ptbxl
    fig = plot_ecg_12lead(rec.signal, rec.fs, rec.leads, title="PTB-XL record 00001 (100 Hz)")
    _save(fig, tmp_path, "ecg12")
    (ax,) = fig.axes
    _check_paper(ax)
    assert ax.get_xlim()[1] == pytest.approx(10.0)
    texts = [t.get_text() for t in ax.texts]
    assert sorted(texts) == sorted([*rec.leads, "II"])  # 12 labels + the rhythm strip's
    traces = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(traces) == 13
    calibration = [line for line in ax.get_lines() if line.get_label() == "_calibration"]
    assert len(calibration) == 4 and np.ptp(calibration[0].get_ydata()) == pytest.approx(1.0)
    # Each lead sits in its 2.5-s column of the classic layout and is the recorded signal.
    for r, row in enumerate(LAYOUT_12):
        for c, name in enumerate(row):
            line = next(t for t in traces if t.get_label() == name)
            xs, ys = line.get_xdata(), line.get_ydata()
            assert xs[0] == pytest.approx(2.5 * c)
            assert xs[-1] == pytest.approx(min(2.5 * (c + 1), 9.99))  # up to the next column's first sample
            lead = rec.signal[rec.leads.index(name)]
            i0 = int(round(xs[0] * rec.fs))
            np.testing.assert_allclose(np.diff(ys), np.diff(lead[i0:i0 + len(ys)]), atol=1e-5)
            assert np.median(ys) == pytest.approx(-(3.5 * r + 2.0), abs=0.3)  # on its row's baseline
    rhythm = [t for t in traces if t.get_label() == "II"]
    assert any(line.get_xdata()[0] == 0 and line.get_xdata()[-1] == pytest.approx(9.99) for line in rhythm)


def test_ecg_12lead_fewer_leads_and_short_record(ptbxl, mitdb100, tmp_path):
    rec, _ = mitdb100
    fig = plot_ecg_12lead(rec.signal, rec.fs, rec.leads)  # MLII and V5, 30 min: first 10 s
    _save(fig, tmp_path, "mitdb2")
    (ax,) = fig.axes
    _check_paper(ax)
    traces = _traces(ax)
    assert sorted(traces) == ["MLII", "V5"]
    assert traces["V5"].get_xdata()[-1] == pytest.approx(10.0 - 1 / rec.fs)
    assert ax.get_ylim() == pytest.approx((-7.0, 0.0))  # one 35-mm row per lead
    # A 6-s 12-lead record keeps the 3 × 4 layout with 1.5-s columns.
    short = plot_ecg_12lead(ptbxl.signal[:, :600], ptbxl.fs, ptbxl.leads, rhythm_lead=None)
    _save(short, tmp_path, "short")
    ax = short.axes[0]
    assert ax.get_xlim()[1] == pytest.approx(6.0)
    assert _traces(ax)["V4"].get_xdata()[0] == pytest.approx(4.5)
    assert len(_traces(ax)) == 12


@pytest.mark.parametrize("columns, rows, v1_start", [(2, 7, 5.0), (1, 12, 0.0)])
def test_ecg_12lead_other_column_counts(ptbxl, columns, rows, v1_start):
    fig = plot_ecg_12lead(ptbxl.signal, ptbxl.fs, ptbxl.leads, columns=columns)
    ax = fig.axes[0]
    assert ax.get_ylim() == pytest.approx((-3.5 * rows, 0.0))  # 6 rows + rhythm strip, or 12 rows
    assert _traces(ax)["V1"].get_xdata()[0] == pytest.approx(v1_start)


def test_ecg_12lead_errors(ptbxl):
    with pytest.raises(ValueError, match="11 lead names"):
        plot_ecg_12lead(ptbxl.signal, 100, ptbxl.leads[:11])
    with pytest.raises(ValueError, match="rhythm_lead 'V7'"):
        plot_ecg_12lead(ptbxl.signal, 100, ptbxl.leads, rhythm_lead="V7")
    with pytest.raises(ValueError, match=r"\(leads, samples\)"):
        plot_ecg_12lead(ptbxl.signal[0], 100, ["I"])


def _rhythm_intervals(ann):
    starts = [(s, a.strip("\x00")) for s, a in zip(ann.sample, ann.aux_note) if a.startswith("(")]
    ends = [s for s, _ in starts[1:]] + [int(ann.sample[-1])]
    return [(s, e, label) for (s, label), e in zip(starts, ends)]


def test_rhythm_strip_beats_mitdb100(mitdb100, tmp_path):
    rec, ann = mitdb100
    symbols = np.array(ann.symbol)
    first_a = int(ann.sample[symbols == "A"][0])
    start = round(first_a / rec.fs - 5)
    fig = plot_rhythm_strip(rec.signal[0], rec.fs, "MLII", beats=ann.sample, beat_labels=ann.symbol,
                            rhythms=_rhythm_intervals(ann), start_s=start, seconds=10,
                            title="MIT-BIH 100, first atrial premature beat")
    _save(fig, tmp_path, "strip100")
    ax = fig.axes[0]
    _check_paper(ax)
    assert ax.get_xlim() == pytest.approx((start - 0.4, start + 10))
    in_window = (ann.sample >= start * rec.fs) & (ann.sample < (start + 10) * rec.fs)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    n_a = int((symbols[in_window] == "A").sum())
    assert f"A ({n_a})" in legend and n_a >= 1
    assert any(t.startswith("N (") for t in legend)
    beat_texts = [t for t in ax.texts if t.get_text() in ("N", "A")]
    assert len(beat_texts) == int(np.isin(symbols[in_window], ["N", "A"]).sum())
    a_text = next(t for t in beat_texts if t.get_text() == "A")
    assert a_text.get_position()[0] == pytest.approx(first_a / rec.fs)
    assert "(N" in [t.get_text() for t in ax.texts]  # the rhythm band's label, NUL stripped


def test_rhythm_strip_bands_mitdb119(mirror, tmp_path):
    rec = read_record(mirror / MITDB / "119", leads=["MLII"])
    ann = wfdb.rdann(str(mirror / MITDB / "119"), "atr")
    intervals = _rhythm_intervals(ann)
    change = next(s for (s, _, lab), (_, _, prev) in zip(intervals[1:], intervals) if lab != prev)
    is_beat = np.array([s in AAMI for s in ann.symbol])
    aami = [AAMI[s] for s in np.array(ann.symbol)[is_beat]]
    start = change / rec.fs - 5
    fig = plot_rhythm_strip(rec.signal[0], rec.fs, beats=ann.sample[is_beat], beat_labels=aami, rhythms=intervals,
                            start_s=start, seconds=10)
    _save(fig, tmp_path, "strip119")
    ax = fig.axes[0]
    before = next(lab for s, e, lab in intervals if s <= start * rec.fs < e)
    after = next(lab for s, e, lab in intervals if s == change)
    bands = [p for p in ax.patches if p.get_label().startswith("_rhythm")]
    assert [p.get_label() for p in bands] == [f"_rhythm {before}", f"_rhythm {after}"]
    assert (before, after) == ("(N", "(B")  # normal rhythm, then ventricular bigeminy
    assert bands[1].get_x() == pytest.approx(change / rec.fs)  # the band starts at the annotation
    v_labels = [t for t in ax.texts if t.get_text() == "V"]
    assert v_labels and all(t.get_color() == BEAT_COLOURS["V"] for t in v_labels)


def test_rhythm_strip_errors(mitdb100):
    rec, ann = mitdb100
    with pytest.raises(ValueError, match="beat_labels given without beats"):
        plot_rhythm_strip(rec.signal[0], rec.fs, beat_labels=["N"])
    with pytest.raises(ValueError, match="3 beats but 2 beat_labels"):
        plot_rhythm_strip(rec.signal[0], rec.fs, beats=[1, 2, 3], beat_labels=["N", "N"])
    with pytest.raises(ValueError, match="outside the record"):
        plot_rhythm_strip(rec.signal[0], rec.fs, start_s=4000)
    with pytest.raises(ValueError, match=r"rhythms\[0\]"):
        plot_rhythm_strip(rec.signal[0], rec.fs, rhythms=[(10, 5, "(N")])
    with pytest.raises(ValueError, match="one lead"):
        plot_rhythm_strip(rec.signal, rec.fs)


# ---------------------------------------------------------------- analysis figures

def test_spectrogram_plot(mitdb100, tmp_path):
    rec, _ = mitdb100
    freqs, times, s = spectrogram(rec.signal[0, : int(10 * rec.fs)], rec.fs, nperseg=256, fmax=50)
    fig = plot_spectrogram(freqs, times, s, title="MIT-BIH 100 MLII")
    _save(fig, tmp_path, "spectrogram")
    assert len(fig.axes) == 2  # the spectrogram and its colour bar
    ax, cax = fig.axes
    assert cax.get_ylabel() == "log |STFT| (log mV)"
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (Hz)"
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert mesh.get_array().shape == s.shape
    assert ax.get_ylim()[1] == pytest.approx(freqs[-1] + (freqs[1] - freqs[0]) / 2)
    with pytest.raises(ValueError, match="shape"):
        plot_spectrogram(freqs, times, s.T)


def test_roc_curves(scores208, tmp_path):
    onehot, score, _, _ = scores208
    fig = plot_roc_curves(onehot, score, CLASSES, title="MIT-BIH 208, first half (held out)")
    _save(fig, tmp_path, "roc")
    ax = fig.axes[0]
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    evaluable = [c for k, c in enumerate(CLASSES) if 0 < onehot[:, k].sum() < len(onehot)]
    assert evaluable == ["N", "V", "F"]
    assert len(texts) == len(evaluable)
    for text, name in zip(texts, evaluable):
        k = CLASSES.index(name)
        assert text == f"{name} (AUROC {roc_auc_score(onehot[:, k], score[:, k]):.3f})"
    title = legend.get_title().get_text()
    assert "skipped (no positives or no negatives): S, Q" in title
    macro = np.mean([roc_auc_score(onehot[:, CLASSES.index(c)], score[:, CLASSES.index(c)]) for c in evaluable])
    assert f"macro AUROC {macro:.3f}" in title
    assert macro > 0.9  # beats of a single patient are easy to separate: the classifier works
    two = plot_roc_curves(onehot, score, CLASSES, max_classes=2)
    assert [t.get_text().split()[0] for t in two.axes[0].get_legend().get_texts()] == ["N", "V"]


def test_roc_curves_errors(scores208):
    onehot, score, _, _ = scores208
    with pytest.raises(ValueError, match="disagree"):
        plot_roc_curves(onehot, score[:, :3], CLASSES)
    with pytest.raises(ValueError, match="no class"):
        plot_roc_curves(onehot[:, [1, 4]], score[:, [1, 4]], ["S", "Q"])


def test_confusion(scores208, tmp_path):
    _, _, y_true, y_pred = scores208
    fig = plot_confusion(y_true=y_true, y_pred=y_pred, labels=CLASSES, title="MIT-BIH 208")
    _save(fig, tmp_path, "confusion")
    ax = fig.axes[0]
    cells = [t.get_text() for t in ax.texts]
    assert len(cells) == 25
    counts = np.array([int(c.split("\n")[0]) for c in cells]).reshape(5, 5)
    assert counts.sum() == len(y_true)
    assert counts[CLASSES.index("V"), CLASSES.index("V")] == int(((y_true == "V") & (y_pred == "V")).sum())
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    # Hand-worked matrix: row-normalised percentages, an empty row stays 0 %.
    fig = plot_confusion(np.array([[3, 1], [0, 0]]), ["a", "b"])
    assert [t.get_text() for t in fig.axes[0].texts] == ["3\n75%", "1\n25%", "0\n0%", "0\n0%"]
    raw = plot_confusion(np.array([[3, 1], [0, 0]]), ["a", "b"], normalize=False)
    assert [t.get_text() for t in raw.axes[0].texts] == ["3", "1", "0", "0"]
    with pytest.raises(ValueError, match="either cm"):
        plot_confusion()
    with pytest.raises(ValueError, match="square"):
        plot_confusion(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 labels"):
        plot_confusion(np.eye(2), ["a", "b", "c"])


def test_training_curves(beats208, tmp_path):
    x_tr, y_tr, x_te, y_te = beats208
    clf = SGDClassifier(loss="log_loss", alpha=1e-3, random_state=0)
    history = []
    for epoch in range(1, 9):
        clf.partial_fit(x_tr, y_tr, classes=np.array(CLASSES))
        p_tr, p_te = clf.predict_proba(x_tr), clf.predict_proba(x_te)  # columns in clf.classes_ order
        v = list(clf.classes_).index("V")
        history.append({"epoch": epoch, "train_loss": log_loss(y_tr, p_tr, labels=clf.classes_),
                        "val_loss": log_loss(y_te, p_te, labels=clf.classes_),
                        "train_auroc": roc_auc_score(y_tr == "V", p_tr[:, v]),
                        "val_auroc": roc_auc_score(y_te == "V", p_te[:, v]),
                        "train_v_loss": log_loss(y_tr == "V", p_tr[:, v]),  # a loss component
                        "lr": 0.01, "epoch_time_s": 0.1})  # bookkeeping, not drawn
    fig = plot_training_curves(history, title="SGD logistic regression on MIT-BIH 208")
    _save(fig, tmp_path, "training")
    assert len(fig.axes) == 2
    loss_ax, metric_ax = fig.axes
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    best = 1 + int(np.argmin([h["val_loss"] for h in history]))
    marker = f"lowest validation loss (epoch {best})"
    assert labels == ["training loss", "validation loss", "train v loss", marker]
    assert [t.get_text() for t in metric_ax.get_legend().get_texts()] == ["train auroc", "val auroc", marker]
    assert history[-1]["val_auroc"] > 0.95 and history[-1]["val_loss"] < history[0]["val_loss"]
    np.testing.assert_allclose(metric_ax.get_lines()[1].get_ydata(), [h["val_auroc"] for h in history])
    kept = plot_training_curves(history, best_epoch=3)
    assert kept.axes[1].get_lines()[-1].get_xdata()[0] == 3
    assert kept.axes[0].get_legend().get_texts()[-1].get_text() == "kept epoch 3"
    from ecgbook.train import SupervisedTask
    kinds = plot_training_curves(history, labels=SupervisedTask.labels)  # the two losses named by kind
    legend = [t.get_text().replace("\n", " ") for t in kinds.axes[0].get_legend().get_texts()]
    assert legend[:2] == [SupervisedTask.labels["train_loss"], SupervisedTask.labels["val_loss"]]
    bare = plot_training_curves([{k: h[k] for k in ("epoch", "train_loss", "val_loss")} for h in history])
    assert "no validation metric" in bare.axes[1].texts[0].get_text()
    with pytest.raises(ValueError, match=r"history\[1\] lacks \['val_loss'\]"):
        plot_training_curves([history[0], {"epoch": 2, "train_loss": 0.1}])
    with pytest.raises(ValueError, match="empty"):
        plot_training_curves([])


def test_metric_bars(scores208, tmp_path):
    onehot, score, _, _ = scores208
    rng = np.random.default_rng(0)
    values = {}
    for name in ("N", "V", "F"):
        k = CLASSES.index(name)
        auc = roc_auc_score(onehot[:, k], score[:, k])
        boot = []
        for _ in range(30):  # bootstrap 95 % interval over beats
            i = rng.integers(0, len(onehot), len(onehot))
            boot.append(roc_auc_score(onehot[i, k], score[i, k]))
        values[name] = (auc, min(auc, np.percentile(boot, 2.5)), max(auc, np.percentile(boot, 97.5)))
    reference = {"N": 0.95, "V": 0.97, "macro": 0.96}  # illustrative reference markers
    fig = plot_metric_bars(values, reference=reference, title="AUROC per class", xlabel="AUROC")
    _save(fig, tmp_path, "bars")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["N", "V", "F", "macro"]
    widths = [p.get_width() for p in ax.patches]
    assert widths[:3] == pytest.approx([v[0] for v in values.values()]) and widths[3] == 0
    (markers,) = [c for c in ax.collections if c.get_label() == "published"]
    np.testing.assert_allclose(markers.get_offsets(), [[0.95, 0], [0.97, 1], [0.96, 3]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["this book", "published"]
    import pandas as pd
    df = pd.DataFrame({"name": ["a", "b"], "value": [0.5, 0.7], "low": [0.4, 0.6], "high": [0.6, 0.8]})
    assert [p.get_width() for p in plot_metric_bars(df).axes[0].patches] == pytest.approx([0.5, 0.7])
    with pytest.raises(ValueError, match="does not contain"):
        plot_metric_bars({"a": (0.9, 0.1, 0.5)})
    with pytest.raises(ValueError, match="number or"):
        plot_metric_bars({"a": (0.9, 0.1)})


def test_figures_are_independent_of_pyplot(ptbxl):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_ecg_12lead(ptbxl.signal, ptbxl.fs, ptbxl.leads)
    assert plt.get_fignums() == before  # nothing left open in pyplot's state, nothing shown


def test_figures_accept_given_axes(ptbxl):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_ecg_12lead(ptbxl.signal[:2], ptbxl.fs, ptbxl.leads[:2], ax=ax) is fig
    assert fig.axes == [ax] and sorted(_traces(ax)) == ["I", "II"]
    spec_ax = Figure().add_subplot()
    freqs, times, s = spectrogram(ptbxl.signal[1], ptbxl.fs)
    assert plot_spectrogram(freqs, times, s, ax=spec_ax) is spec_ax.figure
