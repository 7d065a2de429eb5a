"""Lead-agnostic self-supervised learning: wav2vec 2.0 + CMSC + random lead masking (Oh et al., CHIL 2022).

Oh J, Chung H, Kwon J-m, Hong D-g, Choi E. "Lead-agnostic self-supervised learning for local and
global representations of electrocardiogram". Conference on Health, Inference, and Learning (CHIL),
PMLR 174:338-353, 2022 (arXiv 2203.06889). Official code: ``Jwoo5/fairseq-signals`` at commit
6b9e137 (``examples/w2v_cmsc``); the facts used here, at that commit (``fairseq_signals/`` left out
of the paths below), and the chapter ``chapters/06_lead_agnostic_ssl.md``:

* configuration ``examples/w2v_cmsc/config/pretraining/w2v_cmsc_rlm.yaml``: random lead masking
  with probability 0.5 on every segment (lines 17-20), ``normalize: false`` (21),
  ``loss_weights: [0.1, 10]`` (41), Adam and fixed learning rate (43-56), ``mask_prob: 0.65`` (62);
* span mask: ``data/data_utils.py:18-140`` (``compute_mask_indices``), called with
  ``min_masks=2`` at ``models/transformer.py:158-172``; span length 10 at line 68;
* random lead masking: ``data/ecg/augmentations.py:182-218`` (``RandomLeadsMask``: each of the
  12 leads zeroed with probability ``mask_leads_prob``, line 200);
* wav2vec 2.0 loss: ``criterions/wav2vec2_criterion.py:260-282`` (InfoNCE plus the weighted extra
  losses, each times the number of masked steps), extra losses at
  ``models/wav2vec2/wav2vec2.py:425-437`` (diversity ``(GV - perplexity) / GV``, feature penalty);
* CMSC: ``criterions/wav2vec2_criterion.py:284-327`` (L2-normalised mean-pooled context,
  positives where ``patient_id`` matches, symmetric cross-entropy), temperature 0.1 at
  ``criterions/cmsc_criterion.py:24-26``, pooling at ``models/wav2vec2/wav2vec2_cmsc.py:28-37``;
* pairs of adjacent segments: ``data/ecg/preprocess/convert_to_cmsc_manifest.py:67-75``, segment
  position ``i % 2`` at ``data/ecg/cmsc_ecg_dataset.py:176``.

The pieces, each tested in ``tests/test_lead_agnostic_ssl.py``:

* lead layout: :data:`LEAD_SUBSETS`, :func:`zero_fill`, :func:`keep_leads` (absent leads are zeros
  at their place in the 12-lead layout);
* randomness drawn per sample (:func:`sample_generator`): :func:`span_mask`, :func:`rlm_keep`,
  :func:`draw_randomness` — so a step depends on the samples, not on how a batch is split over
  processes;
* objectives: :func:`wav2vec2_loss` (contrastive + 0.1 diversity + 10 feature penalty),
  :func:`cmsc_loss` (positives from ids, :func:`cmsc_positives`), :func:`pretrain_loss` (their sum, DDP-aware);
* the mixed-lead corpus :func:`build_corpus` (PTB-XL folds 1-8, CinC 2017, MIT-BIH DS1) and the
  pre-training loop :func:`pretrain`;
* downstream: :func:`embed`, the shared :func:`ecgbook.ssl.linear_probe` and label fractions,
  :func:`fine_tune` (official: conv frozen, 5-s crops), patient identification
  (:func:`gallery_probe_split`, :func:`identify`), and the crop-level leak (:func:`crop_splits`);
* the official identification protocol (``paper`` profile, needs Challenge 2021 data): recordings
  (:func:`challenge2021_recordings`), ArcFace fine-tuning with recordings as identities
  (:func:`arcface_finetune`, :class:`~ecgbook.models.arcface.ArcFaceHead`) and the PTB-XL test on
  one 5-s crop per record (:func:`identification_ptbxl_crops`); tested in ``tests/test_arcface.py``.

Sampling frequency: 100 Hz throughout (PTB-XL's ``records100``; CinC 2017 and MIT-BIH resampled);
segments of 5 s (500 samples); a pair is 10 s (two adjacent, non-overlapping segments). Signals
stay in mV without standardisation, as the official configs (``normalize: false``), so that a
zero-filled lead means "absent" for every model.

Modules (a package, one job each): :mod:`.objectives` (lead layout, per-sample randomness, the
losses), :mod:`.corpus` (the mixed-lead corpus), :mod:`.pretrain` (pre-training and its
throughput), :mod:`.downstream` (probes, fine-tuning, paired rows, the crop-level leak),
:mod:`.identification` (gallery/probe identification), :mod:`.arcface` (the ``paper``-only
official identification protocol), :mod:`.comparison` (the methods of the side-by-side comparison,
:mod:`ecgbook.comparison`), :mod:`.cli` (``python -m ecgbook.lead_agnostic_ssl``); every
public name is imported here.
"""
from __future__ import annotations

from .objectives import (  # noqa: F401
    FS,
    LEAD_SUBSETS,
    METHODS,
    Objective,
    PAIR,
    SEGMENT,
    cmsc_loss,
    cmsc_positives,
    draw_randomness,
    keep_leads,
    objective,
    pretrain_loss,
    rlm_keep,
    sample_generator,
    span_mask,
    wav2vec2_loss,
    zero_fill,
)
from .corpus import (  # noqa: F401
    Corpus,
    build_corpus,
    pairs_of,
)
from .pretrain import (  # noqa: F401
    PretrainConfig,
    pretrain,
    pretraining_throughput,
)
from .downstream import (  # noqa: F401
    baseline_subsets,
    crop_splits,
    crops_of,
    embed,
    fine_tune,
    finetune_subsets,
    leak_rows,
    paired_rows,
    prepared_subset,
    probe_subsets,
)
from .identification import (  # noqa: F401
    gallery_probe_split,
    identification_mitdb,
    identification_ptbxl,
    identify,
    mitdb_halves,
)
from .arcface import (  # noqa: F401
    ArcFaceRun,
    ArcFaceTask,
    CHALLENGE2021_EXCLUDE,
    ChallengeRecordings,
    arcface_finetune,
    challenge2021_recordings,
    identification_ptbxl_crops,
    one_crop_per_record,
    tri_stage_factor,
)
from .cli import (  # noqa: F401
    main,
)

from .comparison import (  # noqa: F401
    BUDGET_KEYS,
    OBJECTIVE,
    W2VPretraining,
    W2VProbe,
    W2VFineTune,
)

__all__ = [
    "BUDGET_KEYS",
    "OBJECTIVE",
    "W2VPretraining",
    "W2VProbe",
    "W2VFineTune",
    "FS",
    "LEAD_SUBSETS",
    "METHODS",
    "Objective",
    "PAIR",
    "SEGMENT",
    "cmsc_loss",
    "cmsc_positives",
    "draw_randomness",
    "keep_leads",
    "objective",
    "pretrain_loss",
    "rlm_keep",
    "sample_generator",
    "span_mask",
    "wav2vec2_loss",
    "zero_fill",
    "Corpus",
    "build_corpus",
    "pairs_of",
    "PretrainConfig",
    "pretrain",
    "pretraining_throughput",
    "baseline_subsets",
    "crop_splits",
    "crops_of",
    "embed",
    "fine_tune",
    "finetune_subsets",
    "leak_rows",
    "paired_rows",
    "prepared_subset",
    "probe_subsets",
    "gallery_probe_split",
    "identification_mitdb",
    "identification_ptbxl",
    "identify",
    "mitdb_halves",
    "ArcFaceRun",
    "ArcFaceTask",
    "CHALLENGE2021_EXCLUDE",
    "ChallengeRecordings",
    "arcface_finetune",
    "challenge2021_recordings",
    "identification_ptbxl_crops",
    "one_crop_per_record",
    "tri_stage_factor",
    "main",
    "main",
]
