"""Figures of the book: ECG paper, spectrograms, ROC curves, confusion matrices, training curves, metric bars.

Every function returns a :class:`matplotlib.figure.Figure`. Figures are built with
:class:`matplotlib.figure.Figure` directly (no ``pyplot`` state, so nothing is shown or leaked
and any backend, including Agg, works); in a notebook, make the figure the cell's last
expression (or call ``display(fig)``) to show it, and ``fig.savefig(path)`` to save it.

ECG paper follows the conventions of the standard 12-lead electrocardiogram printout
(AHA/ACCF/HRS recommendations for the standardization and interpretation of the ECG, Kligfield et
al., Circulation 2007): paper speed 25 mm/s, gain 10 mm/mV, a 1 mm minor grid (0.04 s × 0.1 mV)
and a 5 mm major grid (0.2 s × 0.5 mV), and a 1 mV calibration pulse. The paper figures are drawn
at true scale: printed at 100 %, one minor square measures 1 mm × 1 mm.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MultipleLocator

from .data.records import STANDARD_LEADS

#: Paper speed (mm per second) and gain (mm per mV) of the standard ECG printout.
MM_PER_S = 25.0
MM_PER_MV = 10.0
#: Minor (1 mm) and major (5 mm) grid spacing in data units: seconds and mV.
MINOR_S, MAJOR_S = 0.04, 0.2
MINOR_MV, MAJOR_MV = 0.1, 0.5

#: The classic 3 × 4 layout (rows of columns) of the 12-lead printout.
LAYOUT_12 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))

#: Colours of the AAMI beat classes (ANSI/AAMI EC57): normal, supraventricular ectopic,
#: ventricular ectopic, fusion, unknown.
BEAT_COLOURS = {"N": "#333333", "S": "#1f77b4", "V": "#d62728", "F": "#9467bd", "Q": "#8c564b"}

_PAPER_BG = "#fff7f7"
_MINOR_COLOUR = "#f6c3c3"
_MAJOR_COLOUR = "#e07070"
_TRACE = "black"
_MM_PER_IN = 25.4
_CAL_S = 0.4  # room left of the traces for the calibration pulse, s
_EXTRA_COLOURS = ("#2ca02c", "#ff7f0e", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # other beat symbols
_BAND_COLOURS = ("#17becf", "#bcbd22", "#ff7f0e", "#7f7f7f", "#e377c2", "#2ca02c")  # rhythm episodes


# ---------------------------------------------------------------- ECG paper helpers

def _paper_figure(x0, x1, y0, y1, top_in=0.45, bottom_in=0.35, side_in=0.25, dpi=150):
    """A figure whose single axes spans ``[x0, x1] s × [y0, y1] mV`` at true paper scale."""
    w_in = (x1 - x0) * MM_PER_S / _MM_PER_IN
    h_in = (y1 - y0) * MM_PER_MV / _MM_PER_IN
    fig_w, fig_h = w_in + 2 * side_in, h_in + top_in + bottom_in
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes((side_in / fig_w, bottom_in / fig_h, w_in / fig_w, h_in / fig_h))
    return fig, ax


def _ecg_paper(ax, x0, x1, y0, y1) -> None:
    """Turn ``ax`` into ECG paper covering ``[x0, x1]`` seconds and ``[y0, y1]`` mV."""
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(MM_PER_MV / MM_PER_S)  # 1 mV (10 mm) against 1 s (25 mm): squares are square
    ax.xaxis.set_minor_locator(MultipleLocator(MINOR_S))
    ax.xaxis.set_major_locator(MultipleLocator(MAJOR_S))
    ax.yaxis.set_minor_locator(MultipleLocator(MINOR_MV))
    ax.yaxis.set_major_locator(MultipleLocator(MAJOR_MV))
    ax.grid(which="minor", color=_MINOR_COLOUR, linewidth=0.35)
    ax.grid(which="major", color=_MAJOR_COLOUR, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_facecolor(_PAPER_BG)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    for spine in ax.spines.values():
        spine.set_color(_MAJOR_COLOUR)


def _calibration_pulse(ax, x_end, baseline) -> None:
    """Draw the 1 mV × 0.2 s calibration pulse ending at ``x_end`` s on ``baseline`` mV."""
    x = np.array([-0.36, -0.3, -0.3, -0.1, -0.1, -0.04]) + x_end
    y = baseline + np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    ax.plot(x, y, color=_TRACE, linewidth=0.9, label="_calibration")


def _paper_footer(fig, fs: float) -> None:
    fig.text(0.01, 0.01, f"{MM_PER_S:g} mm/s   {MM_PER_MV:g} mm/mV   {fs:g} Hz", fontsize=7,
             ha="left", va="bottom", color="#444444")


def _check_fs(fs) -> float:
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs (sampling frequency) must be a positive number of Hz, got {fs}")
    return fs


# ---------------------------------------------------------------- ECG paper figures

def plot_ecg_12lead(signal, fs: float, leads: Sequence[str], title: str | None = None, columns: int = 4,
                    rhythm_lead: str | None = "II", *, seconds: float = 10.0, ax=None) -> Figure:
    """Draw a record on ECG paper, in the standard 12-lead layout when all twelve leads are given.

    With the twelve standard leads (any order) and ``columns > 1``, the leads are arranged as on a
    clinical printout: ``columns`` time segments side by side (for 4 columns and a 10-s record,
    2.5 s each: ``I, aVR, V1, V4 / II, aVL, V2, V5 / III, aVF, V3, V6``, each segment showing
    the time span of its column), plus a full-length rhythm strip of ``rhythm_lead`` at the
    bottom. Otherwise every lead gets its own full-length row. Each row starts with a 1 mV
    calibration pulse; lead names label each segment.

    Parameters
    ----------
    signal:
        ``(leads, samples)``, mV.
    fs:
        Sampling frequency, Hz.
    leads:
        Lead names, one per row of ``signal`` (canonical spelling, e.g. ``aVR``).
    title:
        Figure title.
    columns:
        Number of time segments per row in the 12-lead layout (4 is standard; 1 gives one row per lead).
    rhythm_lead:
        Lead of the bottom rhythm strip (12-lead layout only); ``None`` for none.
    seconds:
        At most this many seconds from the start of the record are drawn (10 s is standard);
        shorter records are drawn whole.
    ax:
        Axes to draw on; by default a new figure at true paper scale (25 mm/s, 10 mm/mV).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        ``signal`` not 2-D or fewer than 2 samples, ``len(leads)`` differs from its number of rows,
        ``fs`` or ``columns`` not positive, or ``rhythm_lead`` absent from ``leads``.

    Notes
    -----
    Each lead's median over the drawn span is subtracted so that traces sit on their row's
    baseline (a constant offset carries no diagnostic information; the signal is not filtered).
    Data coordinates are seconds and mV, so the grid is 0.04 s / 0.1 mV (minor) and 0.2 s / 0.5 mV
    (major).
    """
    x = np.asarray(signal, dtype=np.float64)
    fs = _check_fs(fs)
    leads = list(leads)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"plot_ecg_12lead: signal must have shape (leads, samples), got {x.shape}")
    if len(leads) != x.shape[0]:
        raise ValueError(f"plot_ecg_12lead: {len(leads)} lead names {leads} for {x.shape[0]} signal rows")
    if int(columns) < 1:
        raise ValueError(f"plot_ecg_12lead: columns must be >= 1, got {columns}")
    columns = int(columns)
    n = min(x.shape[1], max(2, int(round(seconds * fs))))
    x = x[:, :n]
    duration = n / fs
    x = x - np.median(x, axis=1, keepdims=True)
    index = {name: k for k, name in enumerate(leads)}

    twelve = sorted(leads) == sorted(STANDARD_LEADS) and columns > 1
    if twelve:
        if rhythm_lead is not None and rhythm_lead not in index:
            raise ValueError(f"plot_ecg_12lead: rhythm_lead {rhythm_lead!r} is not among the leads {leads}")
        if columns == 4:
            grid = [list(row) for row in LAYOUT_12]
        else:  # the conventional lead order, filled column by column
            per_col = math.ceil(len(STANDARD_LEADS) / columns)
            cols = [STANDARD_LEADS[c * per_col:(c + 1) * per_col] for c in range(columns)]
            grid = [[col[r] if r < len(col) else None for col in cols] for r in range(per_col)]
        rows = [(row, columns) for row in grid]
        if rhythm_lead is not None:
            rows.append(([rhythm_lead], 1))
    else:
        rows = [([name], 1) for name in leads]

    row_mv = 3.5  # 35 mm per row; baselines on a major line, 2 mV of headroom above
    y_top, y_bottom = 0.0, -row_mv * len(rows)
    if ax is None:
        fig, ax = _paper_figure(-_CAL_S, duration, y_bottom, y_top, top_in=0.45 if title else 0.2)
        _paper_footer(fig, fs)
    else:
        fig = ax.figure
    _ecg_paper(ax, -_CAL_S, duration, y_bottom, y_top)

    for r, (names, ncol) in enumerate(rows):
        baseline = -(r * row_mv + 2.0)
        _calibration_pulse(ax, 0.0, baseline)
        seg = duration / ncol
        for c, name in enumerate(names):
            if name is None:
                continue
            i0, i1 = int(round(c * seg * fs)), min(n, int(round((c + 1) * seg * fs)) + 1)
            t = np.arange(i0, i1) / fs
            ax.plot(t, baseline + x[index[name], i0:i1], color=_TRACE, linewidth=0.7, label=name)
            ax.text(c * seg + 0.06, baseline + 1.05, name, fontsize=9, fontweight="bold",
                    ha="left", va="bottom", color="black")
            if c > 0:  # the short lead-change marker of printed ECGs
                ax.plot([c * seg, c * seg], [baseline - 0.3, baseline + 0.3], color=_TRACE,
                        linewidth=1.0, label="_separator")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    return fig


def _rhythm_intervals(rhythms, n_samples):
    out = []
    for k, item in enumerate(rhythms):
        try:
            start, end, label = item
        except (TypeError, ValueError):
            raise ValueError(f"plot_rhythm_strip: rhythms[{k}] must be (start_sample, end_sample, label), got {item!r}")
        if not 0 <= int(start) <= int(end):
            raise ValueError(f"plot_rhythm_strip: rhythms[{k}] has start {start} after end {end} (or negative)")
        out.append((int(start), min(int(end), n_samples), str(label).strip("\x00 ")))
    return out


def plot_rhythm_strip(signal, fs: float, lead: str = "MLII", beats=None, beat_labels=None, rhythms=None,
                      start_s: float = 0.0, seconds: float = 10.0, *, title: str | None = None, ax=None) -> Figure:
    """Draw one lead on ECG paper with beat annotations and rhythm episodes.

    Parameters
    ----------
    signal:
        ``(samples,)``, mV.
    fs:
        Sampling frequency, Hz.
    lead:
        Lead name, written at the start of the strip.
    beats:
        Sample indices (from the start of the record) of annotated beats, e.g. a WFDB ``atr``
        annotation's ``sample``; those inside the window are marked on the trace.
    beat_labels:
        One symbol per beat (e.g. AAMI classes N/S/V/F/Q, coloured per :data:`BEAT_COLOURS`, or
        MIT-BIH symbols), written above the trace and summarised in the legend.
    rhythms:
        ``(start_sample, end_sample, label)`` intervals (e.g. MIT-BIH rhythm annotations ``(AFIB``),
        drawn as shaded bands labelled with the rhythm.
    start_s, seconds:
        The window shown, s from the start of the record. Time labels under the strip are in
        seconds from the start of the record.
    title:
        Figure title.
    ax:
        Axes to draw on; by default a new figure at true paper scale.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        ``signal`` not 1-D, ``fs`` or ``seconds`` not positive, a window starting outside the record,
        ``beat_labels`` without ``beats`` or of a different length, or a malformed rhythm interval.

    Notes
    -----
    The window's median is subtracted so that the trace sits on the 0 mV line.
    """
    x = np.asarray(signal, dtype=np.float64)
    fs = _check_fs(fs)
    if x.ndim != 1:
        raise ValueError(f"plot_rhythm_strip: signal must be one lead of shape (samples,), got {x.shape}")
    if not seconds > 0:
        raise ValueError(f"plot_rhythm_strip: seconds must be positive, got {seconds}")
    i0 = int(round(start_s * fs))
    if not 0 <= i0 < len(x) - 1:
        raise ValueError(f"plot_rhythm_strip: start_s={start_s} s is outside the record ({len(x) / fs:g} s)")
    i1 = min(len(x), i0 + int(round(seconds * fs)))
    t0, t1 = i0 / fs, i0 / fs + seconds
    seg = x[i0:i1] - np.median(x[i0:i1])
    t = np.arange(i0, i1) / fs

    if beat_labels is not None and beats is None:
        raise ValueError("plot_rhythm_strip: beat_labels given without beats")
    beats_in = labels_in = None
    if beats is not None:
        beats = np.asarray(beats).astype(np.int64).reshape(-1)
        labels = None if beat_labels is None else [str(s) for s in beat_labels]
        if labels is not None and len(labels) != len(beats):
            raise ValueError(f"plot_rhythm_strip: {len(beats)} beats but {len(labels)} beat_labels")
        keep = (beats >= i0) & (beats < i1)
        beats_in = beats[keep]
        labels_in = None if labels is None else [lab for lab, k in zip(labels, keep) if k]
    bands = _rhythm_intervals(rhythms or [], len(x))

    lo = min(-1.0, math.floor((seg.min() - 0.3) / MAJOR_MV) * MAJOR_MV)
    hi = max(1.5, math.ceil((seg.max() + 0.3) / MAJOR_MV) * MAJOR_MV)
    hi += 0.5 * (beats_in is not None and labels_in is not None) + 0.5 * bool(bands)
    if ax is None:
        fig, ax = _paper_figure(t0 - _CAL_S, t1, lo, hi, top_in=0.5, bottom_in=0.45)
        _paper_footer(fig, fs)
    else:
        fig = ax.figure
    _ecg_paper(ax, t0 - _CAL_S, t1, lo, hi)
    _calibration_pulse(ax, t0, 0.0)
    ax.plot(t, seg, color=_TRACE, linewidth=0.8, label=lead)
    ax.text(t0 - _CAL_S + 0.03, 1.05, lead, fontsize=9, fontweight="bold", ha="left", va="bottom")
    seconds_axis = ax.secondary_xaxis("bottom")
    seconds_axis.xaxis.set_major_locator(MultipleLocator(1.0))
    seconds_axis.tick_params(labelsize=7, length=2, colors="#444444")
    seconds_axis.set_xlabel("time (s)", fontsize=7, color="#444444")

    colours = dict(BEAT_COLOURS)
    band_colours = {lab: _BAND_COLOURS[k % len(_BAND_COLOURS)]
                    for k, lab in enumerate(dict.fromkeys(lab for _, _, lab in bands))}
    for start, end, label in bands:
        a, b = max(start / fs, t0), min(end / fs, t1)
        if b <= a:
            continue
        colour = band_colours[label]
        ax.axvspan(a, b, color=colour, alpha=0.15, linewidth=0, label=f"_rhythm {label}")
        ax.text(a + 0.04, hi - 0.08, label, fontsize=8, ha="left", va="top", color=colour, fontweight="bold")

    if beats_in is not None and len(beats_in):
        amp = seg[np.clip(beats_in - i0, 0, len(seg) - 1)]
        symbols = labels_in if labels_in is not None else ["beat"] * len(beats_in)
        extra = iter(_EXTRA_COLOURS * (1 + len(set(symbols)) // len(_EXTRA_COLOURS)))
        handles = []
        for sym in dict.fromkeys(symbols):  # first-appearance order
            if sym not in colours:
                colours[sym] = next(extra)
            mask = np.array([s == sym for s in symbols])
            ax.scatter(beats_in[mask] / fs, amp[mask], s=12, color=colours[sym], zorder=3, label=f"_beats {sym}")
            if labels_in is not None:
                y_text = hi - 0.1 - 0.5 * bool(bands)
                for tb in beats_in[mask] / fs:
                    ax.text(tb, y_text, sym, fontsize=8, ha="center", va="top", color=colours[sym],
                            fontweight="normal" if sym == "N" else "bold")
            handles.append(Line2D([], [], marker="o", linestyle="", color=colours[sym],
                                  label=f"{sym} ({int(mask.sum())})"))
        ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(handles),
                  fontsize=7, frameon=False, title=None, borderaxespad=0.2)
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    return fig


# ---------------------------------------------------------------- analysis figures

def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def plot_spectrogram(freqs, times, S, ax=None, title: str | None = None, *,
                     colorbar_label: str = "log |STFT| (log mV)") -> Figure:
    """Draw a spectrogram (e.g. from :func:`ecgbook.signal.spectrogram`) as a colour mesh.

    Parameters
    ----------
    freqs:
        ``(F,)`` frequencies, Hz.
    times:
        ``(T,)`` times, s.
    S:
        ``(F, T)`` magnitude or log magnitude.
    ax:
        Axes to draw on (default: a new figure).
    title:
        Axes title.
    colorbar_label:
        Label of the colour bar (say what ``S`` holds).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        ``S`` is not ``(len(freqs), len(times))``.
    """
    freqs, times, S = np.asarray(freqs), np.asarray(times), np.asarray(S)
    if S.ndim != 2 or S.shape != (len(freqs), len(times)):
        raise ValueError(f"plot_spectrogram: S must have shape (len(freqs), len(times)) = "
                         f"({len(freqs)}, {len(times)}), got {S.shape}")
    fig, ax = _new_axes(ax, (7, 3))
    mesh = ax.pcolormesh(times, freqs, S, shading="nearest", cmap="magma")
    cbar = fig.colorbar(mesh, ax=ax)
    cbar.set_label(colorbar_label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title)
    return fig


def plot_roc_curves(y_true, y_score, class_names: Sequence[str], ax=None, max_classes: int | None = None,
                    *, title: str | None = None) -> Figure:
    """One-vs-rest ROC curve per class, with each class's AUROC and the macro AUROC in the legend.

    Parameters
    ----------
    y_true:
        ``(n, C)`` binary labels (multi-label allowed), or ``(n,)`` for one class.
    y_score:
        ``(n, C)`` scores (probabilities or logits), same shape.
    class_names:
        ``C`` names.
    ax:
        Axes to draw on (default: a new figure).
    max_classes:
        Draw only this many evaluable classes, those with the most positives (the macro AUROC in
        the legend title still averages all evaluable classes).
    title:
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        Shapes disagree, labels are not 0/1, or no class has both positives and negatives.

    Notes
    -----
    Curves and areas from :func:`sklearn.metrics.roc_curve` and :func:`sklearn.metrics.roc_auc_score`.
    Classes without positives or without negatives have no ROC curve; they are skipped and named
    in the legend title. The macro AUROC is the unweighted mean over the evaluable classes, as in the
    PTB-XL benchmark (Strodthoff et al., IEEE JBHI 2021).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_score = y_true[:, None], y_score.reshape(-1, 1)
    names = list(class_names)
    if y_true.shape != y_score.shape or y_true.ndim != 2 or y_true.shape[1] != len(names):
        raise ValueError(f"plot_roc_curves: y_true {y_true.shape}, y_score {y_score.shape} and "
                         f"{len(names)} class_names disagree (expected (n, C) twice and C names)")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("plot_roc_curves: y_true must hold only 0 and 1")
    positives = y_true.sum(axis=0)
    ok = (positives > 0) & (positives < len(y_true))
    if not ok.any():
        raise ValueError("plot_roc_curves: no class has both positive and negative examples")
    aucs = {c: roc_auc_score(y_true[:, c], y_score[:, c]) for c in np.flatnonzero(ok)}
    shown = sorted(aucs, key=lambda c: -positives[c])[:max_classes] if max_classes else list(aucs)
    shown.sort()

    fig, ax = _new_axes(ax, (5.5, 5.5))
    import seaborn as sns
    palette = sns.color_palette("husl", len(shown)) if len(shown) > 10 else sns.color_palette("tab10")
    styles = ("-", "--", ":", "-.")
    for k, c in enumerate(shown):
        fpr, tpr, _ = roc_curve(y_true[:, c], y_score[:, c])
        ax.plot(fpr, tpr, color=palette[k % len(palette)], linestyle=styles[(k // 10) % 4] if len(shown) <= 10 else "-",
                linewidth=1.3, label=f"{names[c]} (AUROC {aucs[c]:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="_chance")
    legend_title = f"macro AUROC {np.mean(list(aucs.values())):.3f} over {len(aucs)} classes"
    if len(shown) < len(aucs):
        legend_title += f"\n(showing the {len(shown)} with most positives)"
    skipped = [names[c] for c in np.flatnonzero(~ok)]
    if skipped:
        legend_title += "\nskipped (no positives or no negatives): " + ", ".join(skipped)
    ax.legend(title=legend_title, loc="lower right", fontsize=7, title_fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (1 − specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    if title:
        ax.set_title(title)
    return fig


def plot_confusion(cm=None, labels: Sequence[str] | None = None, normalize: bool = True, *, y_true=None,
                   y_pred=None, ax=None, title: str | None = None) -> Figure:
    """Confusion matrix as a seaborn heatmap with the counts written in each cell.

    Parameters
    ----------
    cm:
        ``(K, K)`` counts, rows = true class, columns = predicted class; or ``None`` with
        ``y_true``/``y_pred``.
    labels:
        ``K`` class names (required with ``y_true``/``y_pred``: they fix the order).
    normalize:
        Colour by the fraction of each true class (row; the diagonal is then each class's
        sensitivity) and write it under the count; otherwise colour by count.
    y_true, y_pred:
        ``(n,)`` true and predicted labels; the matrix is :func:`sklearn.metrics.confusion_matrix`.
    ax:
        Axes to draw on (default: a new figure).
    title:
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        Neither or both of ``cm`` and ``y_true``/``y_pred`` given, ``cm`` not square, negative
        counts, or ``labels`` of the wrong length.
    """
    import seaborn as sns

    if (cm is None) == (y_true is None or y_pred is None):
        raise ValueError("plot_confusion: give either cm or both y_true and y_pred (and labels)")
    if cm is None:
        if labels is None:
            raise ValueError("plot_confusion: labels are required with y_true/y_pred")
        from sklearn.metrics import confusion_matrix
        cm = confusion_matrix(y_true, y_pred, labels=list(labels))
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion: cm must be square (K, K), got {cm.shape}")
    if (cm < 0).any():
        raise ValueError("plot_confusion: cm holds negative counts")
    labels = [str(v) for v in range(len(cm))] if labels is None else [str(v) for v in labels]
    if len(labels) != len(cm):
        raise ValueError(f"plot_confusion: {len(labels)} labels for a {cm.shape} matrix")
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    counts = [[f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}" for v in row] for row in cm]
    if normalize:
        annot = np.array([[f"{c}\n{f:.0%}" for c, f in zip(cr, fr)] for cr, fr in zip(counts, frac)])
    else:
        annot = np.array(counts)
    size = 1.0 + 0.7 * len(cm)
    fig, ax = _new_axes(ax, (size + 1.2, size))
    sns.heatmap(frac if normalize else cm, annot=annot, fmt="", cmap="Blues", square=True,
                vmin=0, vmax=1 if normalize else None, xticklabels=labels, yticklabels=labels, ax=ax,
                cbar_kws={"label": "fraction of true class" if normalize else "count"},
                annot_kws={"fontsize": 8})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return fig


def plot_training_curves(history: Sequence[Mapping], *, best_epoch: int | None = None, axes=None,
                         title: str | None = None, labels: Mapping[str, str] | None = None) -> Figure:
    """Loss and validation-metric curves per epoch, in two panels.

    Parameters
    ----------
    history:
        One dict per epoch (e.g. :attr:`ecgbook.train.TrainResult.history`) with keys ``epoch``,
        ``train_loss``, ``val_loss`` and optionally metrics named ``val_*`` (e.g. ``val_auroc``,
        ``val_score``: right panel, together with a ``train_*`` key of the same metric when there is
        one). Other ``train_*`` keys (loss components such as ``train_bce``) join the loss panel,
        dashed; other keys (``lr``, ``epoch_time_s`` …) are not drawn. ``None`` is drawn as a gap.
    best_epoch:
        The epoch kept (e.g. chosen on a validation metric), marked in both panels; by default
        the epoch of lowest validation loss is marked.
    axes:
        Two axes to draw on (default: a new figure).
    title:
        Figure title.
    labels:
        What each history key is (e.g. :attr:`ecgbook.train.TrainResult.history_labels`): used as
        the legend of ``train_loss`` and ``val_loss``, so that two losses of different kinds (the
        training objective on crops, the BCE of aggregated validation scores) are not read as one
        quantity. Without it the legend says "training loss" and "validation loss".

    Returns
    -------
    matplotlib.figure.Figure
        Left panel: training and validation loss; right panel: the metrics (or a note that none
        was recorded).

    Raises
    ------
    ValueError
        ``history`` is empty or an entry lacks ``epoch``, ``train_loss`` or ``val_loss``.
    """
    history = list(history)
    if not history:
        raise ValueError("plot_training_curves: history is empty")
    for k, entry in enumerate(history):
        missing = [key for key in ("epoch", "train_loss", "val_loss") if key not in entry]
        if missing:
            raise ValueError(f"plot_training_curves: history[{k}] lacks {missing} (has {sorted(entry)})")

    def column(key):
        return np.array([np.nan if e.get(key) is None else float(e[key]) for e in history])

    keys = list(dict.fromkeys(k for e in history for k in e))
    val_metrics = [k for k in keys if k.startswith("val_") and k != "val_loss"]
    metrics = [k for k in keys if k in val_metrics or (k.startswith("train_") and "val_" + k[6:] in val_metrics)]
    loss_parts = [k for k in keys if k.startswith("train_") and k != "train_loss" and k not in metrics]
    epochs = column("epoch")
    if axes is None:
        fig = Figure(figsize=(10, 3.6), layout="constrained")
        axes = fig.subplots(1, 2)
    else:
        fig = axes[0].figure
    loss_ax, metric_ax = axes
    labels = dict(labels or {})

    def legend(key, default):
        return textwrap.fill(labels[key], 42) if labels.get(key) else default

    loss_ax.plot(epochs, column("train_loss"), marker="o", markersize=3,
                 label=legend("train_loss", "training loss"))
    val = column("val_loss")
    loss_ax.plot(epochs, val, marker="o", markersize=3, label=legend("val_loss", "validation loss"))
    for key in loss_parts:
        loss_ax.plot(epochs, column(key), linestyle="--", linewidth=1, label=key.replace("_", " "))
    if best_epoch is not None:
        marker = (float(best_epoch), f"kept epoch {best_epoch}")
    elif np.isfinite(val).any():
        marker = (epochs[int(np.nanargmin(val))], f"lowest validation loss (epoch {epochs[int(np.nanargmin(val))]:g})")
    else:
        marker = None
    for key in metrics:
        metric_ax.plot(epochs, column(key), marker="o", markersize=3, label=key.replace("_", " "))
    if not metrics:
        metric_ax.text(0.5, 0.5, "no validation metric recorded", ha="center", va="center",
                       transform=metric_ax.transAxes, color="grey")
    for a, ylabel in zip(axes, ("loss", "metric")):
        if marker is not None:
            a.axvline(marker[0], color="grey", linestyle="--", linewidth=1, label=marker[1])
        a.set_xlabel("epoch")
        a.set_ylabel(ylabel)
        a.grid(alpha=0.3)
        if a is loss_ax or metrics:
            a.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def _metric_table(values):
    """``{name: (value, low, high)}`` from a dict or a DataFrame (NaN low/high when absent)."""
    if hasattr(values, "to_dict") and hasattr(values, "columns"):  # pandas DataFrame
        df = values.set_index("name") if "name" in values.columns else values
        if "value" not in df.columns:
            raise ValueError(f"plot_metric_bars: the DataFrame needs a 'value' column (has {list(df.columns)})")
        return {str(name): (float(row["value"]), float(row.get("low", np.nan)), float(row.get("high", np.nan)))
                for name, row in df.iterrows()}
    out = {}
    for name, v in dict(values).items():
        if np.ndim(v) == 0:
            out[str(name)] = (float(v), np.nan, np.nan)
        elif len(v) == 3:
            out[str(name)] = tuple(float(u) for u in v)
        else:
            raise ValueError(f"plot_metric_bars: {name!r} must be a number or (value, low, high), got {v!r}")
    return out


def plot_metric_bars(values, reference: Mapping[str, float] | None = None, ax=None, *,
                     title: str | None = None, xlabel: str = "score", label: str = "this book",
                     reference_label: str = "published") -> Figure:
    """Horizontal bars of our metrics (with confidence intervals) against published numbers.

    Parameters
    ----------
    values:
        ``{name: value}`` or ``{name: (value, low, high)}``, or a DataFrame indexed by name (or
        with a ``name`` column) with a ``value`` column and optional ``low``/``high``.
    reference:
        ``{name: value}`` reported in the paper being reproduced, drawn as black diamonds; names
        missing from ``values`` get a row of their own.
    ax:
        Axes to draw on (default: a new figure).
    title, xlabel, label, reference_label:
        Axes title, axis label, and legend entries for our bars and the published markers.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        A value is not finite, an interval does not contain its value, or there is nothing to draw.
    """
    table = _metric_table(values)
    reference = {str(k): float(v) for k, v in (reference or {}).items()}
    for name, (v, lo, hi) in table.items():
        if not np.isfinite(v):
            raise ValueError(f"plot_metric_bars: value of {name!r} is not finite ({v})")
        if np.isfinite(lo) and np.isfinite(hi) and not lo <= v <= hi:
            raise ValueError(f"plot_metric_bars: interval [{lo}, {hi}] of {name!r} does not contain its value {v}")
    names = list(table) + [n for n in reference if n not in table]
    if not names:
        raise ValueError("plot_metric_bars: nothing to draw (values and reference are empty)")
    fig, ax = _new_axes(ax, (6.5, 0.9 + 0.42 * len(names)))
    y = np.arange(len(names))
    ours = [table.get(n, (np.nan, np.nan, np.nan)) for n in names]
    vals = np.array([o[0] for o in ours])
    err = np.array([[o[0] - o[1], o[2] - o[0]] for o in ours]).T
    has_err = np.isfinite(err).all(axis=0)
    handles = [ax.barh(y, np.nan_to_num(vals), height=0.6, color="#4c72b0", label=label)]
    if has_err.any():
        ax.errorbar(vals[has_err], y[has_err], xerr=err[:, has_err], fmt="none", ecolor="black",
                    capsize=3, linewidth=1, label="_ci")
    finite = np.concatenate([vals[np.isfinite(vals)], np.array(list(reference.values())),
                             err[1][has_err] + vals[has_err]])
    right = finite.max() * 1.05 if finite.max() > 0 else 1.0
    for yi, v in zip(y, vals):  # the value, at the base inside the bar (after it for short bars)
        if np.isfinite(v):
            inside = v > 0.25 * right
            ax.text(0.01 * right if inside else v, yi, f"{v:.3f}" if inside else f" {v:.3f}",
                    va="center", ha="left", fontsize=7, color="white" if inside else "black")
    if reference:
        ry = [names.index(n) for n in reference]
        handles.append(ax.scatter(list(reference.values()), ry, marker="D", color="black", zorder=3, s=30,
                                  label=reference_label))
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(min(0.0, finite.min() * 1.1), right)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title)
    return fig
