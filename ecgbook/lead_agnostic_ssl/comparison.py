"""The technique in the side-by-side comparison (:mod:`ecgbook.comparison`): a wav2vec 2.0 encoder
pre-trained once with W2V+CMSC+RLM on a mixed-lead corpus whose PTB-XL part is the comparison's
pre-training records, evaluated by a linear probe and by the official fine-tuning, each beside its
random-initialisation control.

:class:`W2VPretraining` is the one pre-training shared by the pre-trained methods (the chapter's
corpus and :func:`~ecgbook.lead_agnostic_ssl.pretrain`, with PTB-XL folds 1–6 instead of 1–8);
:class:`W2VProbe` and :class:`W2VFineTune` are the :class:`~ecgbook.comparison.Method` objects;
:func:`methods` builds the four of them from one budget (the names of :data:`BUDGET_KEYS`, those of
the chapter's parameters). As in the chapter, inputs stay in mV (no standardisation, official
``normalize: false``) and absent leads are zeros at their place (``lead_input = "zero-filled"``).

Source: Oh et al., "Lead-agnostic self-supervised learning for local and global representations of
electrocardiogram", CHIL 2022 (PMLR 174:338-353); official code Jwoo5/fairseq-signals
``examples/w2v_cmsc`` (configuration ``config/pretraining/w2v_cmsc_rlm.yaml``, fine-tuning
``config/finetuning/ecg_transformer/diagnosis.yaml``), cited ``file:line`` in
:mod:`ecgbook.lead_agnostic_ssl`.
"""
from __future__ import annotations

import time

import numpy as np

from ..comparison import Cell, ComparisonData, Method, MethodRun, Split
from ..data.records import LEAD_SUBSETS, keep_leads
from ..models.common import count_parameters
from ..models.wav2vec2 import W2VClassifier, Wav2Vec2Encoder, Wav2Vec2Pretrainer, wav2vec2_config
from ..ssl import linear_probe
from ..train import seed_everything
from .corpus import build_corpus
from .downstream import embed, fine_tune, prepared_subset
from .objectives import FS, PAIR, objective
from .pretrain import PretrainConfig, pretrain

#: The keyword arguments of :func:`methods` that set the budget: the chapter's parameter names
#: (``chapters/06_lead_agnostic_ssl.md``), so a profile's values can be passed as they are.
BUDGET_KEYS = ("size", "cinc_records", "cinc_pairs_per_record", "mitdb_pairs_per_record", "pretrain_epochs",
               "pretrain_batch_size", "pretrain_lr", "pretrain_warmup", "pretrain_schedule", "anneal_to_end",
               "finetune_epochs", "finetune_lr", "batch_size")
#: The pre-training objective of the compared encoder (the paper's proposed method).
OBJECTIVE = "W2V+CMSC+RLM"
#: Records per chunk when embeddings of every record are computed.
_CHUNK = 4096
_CHAPTER = "06_lead_agnostic_ssl"
_ADAPTATION = ("pre-training on PTB-XL folds 1–6, CinC 2017 and MIT-BIH DS1 (adaptation: the paper pre-trains "
               "on the Challenge 2021 data)")


class W2VPretraining:
    """The W2V+CMSC+RLM pre-training shared by the pre-trained methods: one wav2vec 2.0 encoder of
    ``size`` (:func:`~ecgbook.models.wav2vec2.wav2vec2_config`) pre-trained once, without labels.

    The corpus (:func:`~ecgbook.lead_agnostic_ssl.build_corpus`) is, as in the chapter
    (``chapters/06_lead_agnostic_ssl.md``, "The mixed-lead pre-training corpus"), 10-s PTB-XL
    records (one pair of 5-s segments each), CinC 2017 (``cinc_records`` records,
    ``cinc_pairs_per_record``) and MIT-BIH DS1 (``mitdb_pairs_per_record``), all at 100 Hz in mV,
    except that its PTB-XL part is the records given to :meth:`pretrain` (PTB-XL folds 1–6 in a
    comparison) instead of folds 1–8. ``seed_everything(seed)``, then
    :func:`~ecgbook.lead_agnostic_ssl.pretrain` with :class:`~ecgbook.lead_agnostic_ssl.PretrainConfig`
    (``epochs``, ``batch_size`` pairs, ``lr``, ``warmup``, ``schedule``, ``anneal_to_end``). The last
    epoch is kept (the chapter does the same; no fold is used for selection).

    Raises ``ValueError`` for an unknown ``size`` or ``objective_name``.
    """

    def __init__(self, size: str, *, cinc_records: int | None, cinc_pairs_per_record: int | None,
                 mitdb_pairs_per_record: int | None, epochs: int, batch_size: int, lr: float, warmup: float = 0.0,
                 schedule: str = "fixed", anneal_to_end: bool = False, seed: int = 0,
                 objective_name: str = OBJECTIVE, device: str | None = None):
        self.cfg = wav2vec2_config(size)
        self.objective = objective(objective_name)
        self.size, self.seed, self.device = size, int(seed), device
        self.corpus_caps = dict(cinc_records=cinc_records, cinc_pairs_per_record=cinc_pairs_per_record,
                                mitdb_pairs_per_record=mitdb_pairs_per_record)
        self.config = PretrainConfig(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), warmup=float(warmup),
                                     schedule=schedule, anneal_to_end=bool(anneal_to_end), seed=self.seed)
        self.encoder: Wav2Vec2Encoder | None = None
        self.info: dict = {}
        self.corpus_recordings: np.ndarray | None = None  # recording id of every pre-training pair
        self.corpus_sources: np.ndarray | None = None
        self._data, self._key = None, None
        self._embedded, self._embeddings = None, {}

    def pretrain(self, data: ComparisonData, records: np.ndarray) -> dict:
        """Build the corpus with the PTB-XL records ``records`` (indices into ``data``) and pre-train,
        once per ``(data, records)``. Returns ``{"seconds", "epochs", "updates", "segments_per_s",
        "history", "corpus"}`` (``history``: per-epoch loss terms of
        :func:`~ecgbook.lead_agnostic_ssl.pretrain`; ``corpus``: pairs per source). Raises
        ``ValueError`` when ``data`` is not 10-s records at 100 Hz."""
        records = np.asarray(records, dtype=int)
        key = (len(data), tuple(map(int, np.asarray(data.ecg_id)[records])))
        if self._data is data and self._key == key:
            return self.info
        if data.fs != FS or data.X.shape[-1] != PAIR:
            raise ValueError(f"W2VPretraining: data of {data.X.shape[-1]} samples at {data.fs} Hz; the corpus "
                             f"takes 10-s records at {FS} Hz ({PAIR} samples)")
        t0 = time.perf_counter()
        corpus = build_corpus(ptbxl_data=(data.X[records], data.ecg_id[records], data.patient_id[records]),
                              **self.corpus_caps)
        seed_everything(self.seed)
        model = Wav2Vec2Pretrainer(self.cfg)
        res = pretrain(model, corpus, self.objective, self.config, device=self.device)
        self.encoder = model.encoder.cpu().eval()
        self.corpus_recordings, self.corpus_sources = corpus.recording, corpus.source
        sources, counts = np.unique(corpus.source, return_counts=True)
        self.info = {"seconds": time.perf_counter() - t0, "epochs": self.config.epochs, "updates": res["updates"],
                     "segments_per_s": res["segments_per_s"], "history": res["history"],
                     "corpus": {str(s): int(c) for s, c in zip(sources, counts)}}
        self._data, self._key, self._embedded, self._embeddings = data, key, None, {}
        return self.info

    def _check(self, data: ComparisonData, pretrained: bool) -> None:
        if pretrained and (self.encoder is None or self._data is not data):
            raise RuntimeError("W2VPretraining: call pretrain(data, records) (run_grid does) with this data first")

    def random_encoder(self, seed: int) -> Wav2Vec2Encoder:
        """The same architecture at random initialisation (``seed_everything(seed)`` first, as the
        chapter's ``random init``)."""
        seed_everything(seed)
        return Wav2Vec2Encoder(self.cfg).eval()

    def embeddings(self, data: ComparisonData, leads: int, pretrained: bool, seed: int = 0) -> np.ndarray:
        """``(records, D)``: every record's pooled context (:func:`~ecgbook.lead_agnostic_ssl.embed`,
        the mean over its two 5-s halves), the lead set ``leads`` zero-filled, input in mV; cached
        per lead set (and ``seed`` for the random encoder)."""
        self._check(data, pretrained)
        if self._embedded is not data:
            self._embedded, self._embeddings = data, {}
        key = (leads, pretrained, None if pretrained else int(seed))
        if key not in self._embeddings:
            enc = self.encoder if pretrained else self.random_encoder(seed)
            self._embeddings[key] = np.concatenate(
                [embed(enc, keep_leads(np.asarray(data.X[lo:lo + _CHUNK], np.float32), LEAD_SUBSETS[leads]),
                       device=self.device) for lo in range(0, len(data), _CHUNK)])
        return self._embeddings[key]


class W2VProbe(Method):
    """Linear probe of the frozen encoder's pooled contexts (pre-trained, or with ``pretrained=False``
    the random-initialisation control seeded by the cell's seed): :func:`ecgbook.ssl.linear_probe`
    (its default ``C`` grid, as the chapter) on the labelled training records, ``C`` chosen on
    ``split.val``. No per-epoch history."""

    family = "linear probe"
    lead_input = "zero-filled"
    chapter = _CHAPTER

    def __init__(self, shared: W2VPretraining, *, pretrained: bool = True):
        self.shared, self.pretrained = shared, bool(pretrained)
        self.name = "W2V+CMSC+RLM (linear probe)" if pretrained else "random W2V (linear probe)"
        self.control = "random W2V (linear probe)" if pretrained else None
        self.description = (("W2V+CMSC+RLM-pre-trained" if pretrained else "randomly initialised") +
                            f" wav2vec 2.0 encoder ({shared.size}), frozen; logistic regression on its pooled "
                            f"context; {_ADAPTATION}")

    def pretrain(self, data: ComparisonData, records: np.ndarray) -> dict:
        return self.shared.pretrain(data, records) if self.pretrained else {}

    def run(self, data: ComparisonData, split: Split, train: np.ndarray, cell: Cell) -> MethodRun:
        t0 = time.perf_counter()
        Z = self.shared.embeddings(data, cell.leads, self.pretrained, cell.seed)
        r = linear_probe(Z[train], data.Y[train], Z[split.val], data.Y[split.val], Z[split.test], seed=cell.seed)
        return MethodRun(r.val_scores, r.test_scores, None, None, None, time.perf_counter() - t0,
                         note=f"C = {r.C:g}")

    def parameters(self, n_classes: int, leads: int = 12) -> int:
        return count_parameters(Wav2Vec2Encoder(self.shared.cfg)) + (self.shared.cfg.embed_dim + 1) * n_classes


class W2VFineTune(Method):
    """The official fine-tuning (:func:`~ecgbook.lead_agnostic_ssl.fine_tune`: conv encoder frozen,
    Transformer and a mean-pool linear head trained on random 5-s crops, epoch chosen on
    ``split.val`` macro AUROC, test scores max over 5-s windows) of the pre-trained encoder or, with
    ``pretrained=False``, of a random one (initialised after ``seed_everything`` of the cell's seed).
    ``epochs``, ``batch_size`` (shrunk to the labelled records when larger), ``lr``: the chapter's
    ``finetune_epochs``, ``batch_size``, ``finetune_lr``."""

    family = "fine-tune"
    lead_input = "zero-filled"
    chapter = _CHAPTER

    def __init__(self, shared: W2VPretraining, *, epochs: int, batch_size: int, lr: float, pretrained: bool = True):
        self.shared, self.pretrained = shared, bool(pretrained)
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.name = "W2V+CMSC+RLM (fine-tune)" if pretrained else "random W2V (fine-tune)"
        self.control = "random W2V (fine-tune)" if pretrained else None
        self.description = (("W2V+CMSC+RLM-pre-trained" if pretrained else "randomly initialised") +
                            f" wav2vec 2.0 encoder ({shared.size}), Transformer and head fine-tuned (conv frozen); "
                            f"{_ADAPTATION}")

    def pretrain(self, data: ComparisonData, records: np.ndarray) -> dict:
        return self.shared.pretrain(data, records) if self.pretrained else {}

    def run(self, data: ComparisonData, split: Split, train: np.ndarray, cell: Cell) -> MethodRun:
        self.shared._check(data, self.pretrained)
        prepared = prepared_subset(data, cell.lead_names, {"train": train, "val": split.val, "test": split.test})
        t0 = time.perf_counter()
        out = fine_tune(self.shared.encoder if self.pretrained else None, self.shared.cfg, prepared,
                        epochs=self.epochs, batch_size=min(self.batch_size, len(train)), lr=self.lr, seed=cell.seed)
        return MethodRun(out.val_scores, out.test_scores, out.fit.history, out.fit.best_epoch, self.epochs,
                         time.perf_counter() - t0, out.fit.samples_per_s)

    def parameters(self, n_classes: int, leads: int = 12) -> int:
        return count_parameters(W2VClassifier(Wav2Vec2Encoder(self.shared.cfg), n_classes))


def methods(*, size: str, cinc_records: int | None, cinc_pairs_per_record: int | None,
            mitdb_pairs_per_record: int | None, pretrain_epochs: int, pretrain_batch_size: int, pretrain_lr: float,
            pretrain_warmup: float, pretrain_schedule: str, anneal_to_end: bool, finetune_epochs: int,
            finetune_lr: float, batch_size: int, seed: int = 0, device: str | None = None) -> list[Method]:
    """The technique's four methods, sharing one :class:`W2VPretraining`: ``"W2V+CMSC+RLM (linear
    probe)"``, ``"random W2V (linear probe)"``, ``"W2V+CMSC+RLM (fine-tune)"``, ``"random W2V
    (fine-tune)"``. The budget keywords (:data:`BUDGET_KEYS`) are the chapter's parameters of the same
    names; ``seed``: of the pre-training (the chapter's ``seed``)."""
    shared = W2VPretraining(size, cinc_records=cinc_records, cinc_pairs_per_record=cinc_pairs_per_record,
                            mitdb_pairs_per_record=mitdb_pairs_per_record, epochs=pretrain_epochs,
                            batch_size=pretrain_batch_size, lr=pretrain_lr, warmup=pretrain_warmup,
                            schedule=pretrain_schedule, anneal_to_end=anneal_to_end, seed=seed, device=device)
    ft = dict(epochs=finetune_epochs, batch_size=batch_size, lr=finetune_lr)
    return [W2VProbe(shared), W2VProbe(shared, pretrained=False),
            W2VFineTune(shared, **ft), W2VFineTune(shared, pretrained=False, **ft)]
