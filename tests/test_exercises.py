"""The exercise checkers pass correct answers and fail wrong ones, on the mirror's real records."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgbook import exercises
from ecgbook.data.mitdb import record_to_patient

torch.set_num_threads(1)


def test_derived_leads(capsys):
    def right(I, II):
        return {"III": II - I, "aVR": -(I + II) / 2, "aVL": I - II / 2, "aVF": II - I / 2}

    def wrong(I, II):  # aVL with the sign of II flipped
        out = right(I, II)
        out["aVL"] = I + II / 2
        return out

    assert exercises.check_derived_leads(right)
    assert capsys.readouterr().out.startswith("PASS check_derived_leads")
    assert not exercises.check_derived_leads(wrong)
    out = capsys.readouterr().out
    assert out.startswith("FAIL check_derived_leads") and "lead aVL" in out and "sample" in out
    assert not exercises.check_derived_leads(lambda I, II: {"III": II - I})
    assert "missing" in capsys.readouterr().out


def test_derived_leads_reports_an_exception(capsys):
    def broken(I, II):
        raise KeyError("II")

    assert not exercises.check_derived_leads(broken)
    assert "raised KeyError" in capsys.readouterr().out


def test_macro_auroc(capsys):
    from sklearn.metrics import roc_auc_score

    def right(y, s):
        keep = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
        left = [j for j in range(y.shape[1]) if j not in keep]
        return float(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in keep])), left

    def keeps_everything(y, s):  # scores a class without a positive as 0.5
        vals = [roc_auc_score(y[:, j], s[:, j]) if 0 < y[:, j].sum() < len(y) else 0.5 for j in range(y.shape[1])]
        return float(np.mean(vals)), []

    assert exercises.check_macro_auroc(right)
    assert capsys.readouterr().out.startswith("PASS")
    assert not exercises.check_macro_auroc(keeps_everything)
    assert "left out []" in capsys.readouterr().out
    assert not exercises.check_macro_auroc(lambda y, s: right(y, s)[0])  # value only
    assert capsys.readouterr().out.startswith("FAIL")


def test_macro_auroc_cases_have_classes_without_positive():
    cases = exercises._auroc_cases()
    assert any((Y.sum(0) == 0).any() for _, Y, _, _ in cases)


def test_patient_split(capsys):
    def right(records, k):
        patients = sorted({record_to_patient(r) for r in records})
        fold_of = {p: i % k for i, p in enumerate(patients)}
        return np.array([fold_of[record_to_patient(r)] for r in records])

    def by_record(records, k):  # forgets that 201 and 202 are one patient
        names = sorted(set(records))
        fold_of = {r: i % k for i, r in enumerate(names)}
        return np.array([fold_of[r] for r in records])

    def by_beat(records, k):
        return np.arange(len(records)) % k

    assert exercises.check_patient_split(right)
    assert capsys.readouterr().out.startswith("PASS")
    assert not exercises.check_patient_split(by_beat)
    assert capsys.readouterr().out.startswith("FAIL")
    assert not exercises.check_patient_split(by_record)
    assert "patient 201 (records 201, 202)" in capsys.readouterr().out
    assert not exercises.check_patient_split(lambda records, k: np.zeros(len(records), int))
    assert "every one" in capsys.readouterr().out


def test_symmetric_kl(capsys):
    def right(a, b, T):
        p, q = torch.sigmoid(a / T), torch.sigmoid(b / T)
        kl = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
        kl_back = q * torch.log(q / p) + (1 - q) * torch.log((1 - q) / (1 - p))
        return (kl + kl_back).sum(1).mean() * T ** 2

    def softmax_kl(a, b, T):  # blind to a constant shift of the logits
        p, q = torch.softmax(a / T, 1), torch.softmax(b / T, 1)
        return ((p - q) * (torch.log(p) - torch.log(q))).sum(1).mean() * T ** 2

    def no_t_squared(a, b, T):
        return right(a, b, T) / T ** 2

    assert exercises.check_symmetric_kl(right)
    assert capsys.readouterr().out.startswith("PASS")
    assert not exercises.check_symmetric_kl(softmax_kl)
    assert capsys.readouterr().out.startswith("FAIL")
    assert not exercises.check_symmetric_kl(no_t_squared)
    assert "T=4" in capsys.readouterr().out


def _windows(samples, window, stride, last=True):
    starts = list(range(0, samples - window + 1, stride))
    if last and starts[-1] != samples - window:
        starts.append(samples - window)
    return starts


def test_window_aggregation(capsys):
    def right(model, X, window, stride):
        x = torch.as_tensor(X)
        with torch.no_grad():
            s = [torch.sigmoid(model(x[..., a:a + window])) for a in _windows(X.shape[-1], window, stride)]
        return torch.stack(s).amax(0).numpy()

    def mean(model, X, window, stride):
        x = torch.as_tensor(X)
        with torch.no_grad():
            s = [torch.sigmoid(model(x[..., a:a + window])) for a in _windows(X.shape[-1], window, stride)]
        return torch.stack(s).mean(0).numpy()

    def forgets_last(model, X, window, stride):
        x = torch.as_tensor(X)
        with torch.no_grad():
            s = [torch.sigmoid(model(x[..., a:a + window]))
                 for a in _windows(X.shape[-1], window, stride, last=False)]
        return torch.stack(s).amax(0).numpy()

    assert exercises.check_window_aggregation(right)
    assert capsys.readouterr().out.startswith("PASS")
    assert not exercises.check_window_aggregation(mean)
    assert "2.5-s windows" in capsys.readouterr().out
    assert not exercises.check_window_aggregation(forgets_last)  # 3-s windows need the last one
    assert "3-s windows" in capsys.readouterr().out


def test_spectrogram_shape(capsys):
    import math

    def right(n, fs, nperseg, noverlap, fmax):
        hop = nperseg - noverlap
        padded = n + 2 * (nperseg // 2)  # scipy's boundary="zeros"
        frames = math.ceil((padded - nperseg) / hop) + 1 if (padded - nperseg) % hop else (padded - nperseg) // hop + 1
        freqs = np.fft.rfftfreq(nperseg, 1 / fs)
        bins = len(freqs) if fmax is None else int((freqs <= fmax).sum())
        return bins, frames

    def no_padding(n, fs, nperseg, noverlap, fmax):
        bins, _ = right(n, fs, nperseg, noverlap, fmax)
        return bins, (n - nperseg) // (nperseg - noverlap) + 1

    assert exercises.check_spectrogram_shape(right)
    assert capsys.readouterr().out.startswith("PASS")
    assert not exercises.check_spectrogram_shape(no_padding)
    assert "(bins, frames)" in capsys.readouterr().out


def test_shared_patients(capsys):
    def right(folds, patients):
        hits = sum(np.isin(patients[te], patients[tr]).sum() for tr, te in folds)
        return hits / sum(len(te) for _, te in folds)

    def of_training(folds, patients):  # the share of training instances instead of test ones
        hits = sum(np.isin(patients[tr], patients[te]).sum() for tr, te in folds)
        return hits / sum(len(tr) for tr, _ in folds)

    def per_record(folds, patients):  # counts training beats of the same record only: misses 201/202
        return 0.0

    assert exercises.check_shared_patients(right)
    assert capsys.readouterr().out.startswith("PASS")
    assert not exercises.check_shared_patients(per_record)
    assert "segment-level" in capsys.readouterr().out
    assert not exercises.check_shared_patients(of_training)
    assert "DS1 → DS2" in capsys.readouterr().out


def test_cmsc_positives(capsys):
    def right(ids, segment):
        return ids[segment == 0][:, None] == ids[segment == 1][None, :]

    def by_position(ids, segment):  # pair i's own segments only: misses two pairs of one recording
        return np.eye(int((segment == 0).sum()), int((segment == 1).sum()), dtype=bool)

    def interleaved(ids, segment):  # assumes segments 2i, 2i + 1 are a pair, whatever `segment` says
        return ids[0::2][:, None] == ids[1::2][None, :]

    assert exercises.check_cmsc_positives(right)
    assert capsys.readouterr().out.startswith("PASS check_cmsc_positives")
    assert not exercises.check_cmsc_positives(by_position)
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "two pairs of one recording" in out and "P[0, 1]" in out
    assert not exercises.check_cmsc_positives(interleaved)
    assert "shuffled order" in capsys.readouterr().out
    assert not exercises.check_cmsc_positives(lambda ids, segment: ids[:, None] == ids[None, :])
    assert "shape" in capsys.readouterr().out


def test_cmsc_cases_have_repeated_recordings():
    _, ids, segment, names = exercises._cmsc_cases()[1]
    counts = np.bincount(ids[segment == 0])
    assert counts.max() == 3 and (counts == 1).sum() == 6
    assert any(n.startswith("ptbxl:") for n in names) and "mitdb:101" in names


def test_zero_fill(capsys):
    layout = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]

    def right(x, leads):
        out = np.zeros(x.shape[:-2] + (12, x.shape[-1]), np.float32)
        out[..., [layout.index(l) for l in leads], :] = x
        return out

    def first_rows(x, leads):  # puts the leads in the first rows, ignoring their names
        out = np.zeros(x.shape[:-2] + (12, x.shape[-1]), np.float32)
        out[..., :len(leads), :] = x
        return out

    def sorted_leads(x, leads):  # places each lead at the position of its rank in the layout
        order = sorted(leads, key=layout.index)
        return right(x, order)

    assert exercises.check_zero_fill(right)
    assert capsys.readouterr().out.startswith("PASS check_zero_fill")
    assert not exercises.check_zero_fill(first_rows)
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "leads I, II" in out and "must be 0" in out
    assert not exercises.check_zero_fill(sorted_leads)
    assert "out of layout order" in capsys.readouterr().out
    assert not exercises.check_zero_fill(lambda x, leads: x)
    assert "shape" in capsys.readouterr().out


def test_dino_loss(capsys):
    def right(s, t, center, tau_s, tau_t, n_global):
        n_views = s.shape[0] // (t.shape[0] // n_global)
        q = torch.softmax((t - center) / tau_t, -1).chunk(n_global)
        logp = torch.log_softmax(s / tau_s, -1).chunk(n_views)
        terms = [-(q[g] * logp[v]).sum(-1).mean() for g in range(n_global) for v in range(n_views) if v != g]
        return sum(terms) / len(terms)

    def no_centre(s, t, center, tau_s, tau_t, n_global):
        return right(s, t, torch.zeros_like(center), tau_s, tau_t, n_global)

    def same_view_too(s, t, center, tau_s, tau_t, n_global):  # also pairs a global view with itself
        n_views = s.shape[0] // (t.shape[0] // n_global)
        q = torch.softmax((t - center) / tau_t, -1).chunk(n_global)
        logp = torch.log_softmax(s / tau_s, -1).chunk(n_views)
        terms = [-(q[g] * logp[v]).sum(-1).mean() for g in range(n_global) for v in range(n_views)]
        return sum(terms) / len(terms)

    def fixed_teacher_temp(s, t, center, tau_s, tau_t, n_global):
        return right(s, t, center, tau_s, 0.04, n_global)

    assert exercises.check_dino_loss(right)
    assert capsys.readouterr().out.startswith("PASS check_dino_loss")
    assert not exercises.check_dino_loss(same_view_too)
    assert "zero centre" in capsys.readouterr().out
    assert not exercises.check_dino_loss(no_centre)
    assert "non-zero centre" in capsys.readouterr().out
    assert not exercises.check_dino_loss(fixed_teacher_temp)
    assert "tau_t = 0.07" in capsys.readouterr().out


def test_gate_fusion(capsys):
    def right(h_t, h_s, weight, bias):
        g = torch.softmax(torch.cat([h_t, h_s], 1) @ weight.T + bias, dim=1)
        return torch.cat([g[:, :1] * h_t, g[:, 1:] * h_s], 1), g

    def sigmoid_gate(h_t, h_s, weight, bias):  # two independent gates: need not sum to 1
        g = torch.sigmoid(torch.cat([h_t, h_s], 1) @ weight.T + bias)
        return torch.cat([g[:, :1] * h_t, g[:, 1:] * h_s], 1), g

    def swapped(h_t, h_s, weight, bias):  # weighs the time series by the spectrogram's weight
        h, g = right(h_t, h_s, weight, bias)
        return torch.cat([g[:, 1:] * h_t, g[:, :1] * h_s], 1), g

    def over_batch(h_t, h_s, weight, bias):  # softmax over the windows instead of the modalities
        g = torch.softmax(torch.cat([h_t, h_s], 1) @ weight.T + bias, dim=0)
        return torch.cat([g[:, :1] * h_t, g[:, 1:] * h_s], 1), g

    assert exercises.check_gate_fusion(right)
    assert capsys.readouterr().out.startswith("PASS check_gate_fusion")
    assert not exercises.check_gate_fusion(sigmoid_gate)
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "sum to" in out
    assert not exercises.check_gate_fusion(swapped)
    assert "time-series feature 0" in capsys.readouterr().out
    assert not exercises.check_gate_fusion(over_batch)
    assert "sum to" in capsys.readouterr().out
    assert not exercises.check_gate_fusion(lambda h_t, h_s, w, b: torch.cat([h_t, h_s], 1))
    assert "return (h, g)" in capsys.readouterr().out


CHECKERS = sorted(name for name in dir(exercises) if name.startswith("check_"))


@pytest.mark.parametrize("wrong", ["not an answer", {"answer": 1}], ids=["str", "dict"])
@pytest.mark.parametrize("checker", CHECKERS)
def test_a_wrong_return_type_is_a_fail_line_not_a_traceback(checker, wrong, capsys):
    """Every checker given a function that returns a string or a dict prints one FAIL line that
    names the type returned and what was expected, and returns False (no exception)."""
    if checker in ("check_derived_leads", "check_lead_loss") and isinstance(wrong, dict):
        wrong = ["III"]                                   # a dict is what it expects: try a list instead
    assert getattr(exercises, checker)(lambda *args, **kwargs: wrong) is False
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert lines and lines[0].startswith("FAIL "), lines
    assert type(wrong).__name__ in lines[0] and "expected" in lines[0], lines
