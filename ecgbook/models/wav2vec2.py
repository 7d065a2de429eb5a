"""wav2vec 2.0 for multi-lead ECG, as in Oh et al. (CHIL 2022) and its official code, in plain torch.

Sources: Baevski, Zhou, Mohamed, Auli, "wav2vec 2.0", NeurIPS 2020 (Sec. 2-3); Oh, Chung, Kwon,
Hong, Choi, "Lead-agnostic self-supervised learning for local and global representations of
electrocardiogram", CHIL 2022 (arXiv 2203.06889); official code ``Jwoo5/fairseq-signals`` at
commit 6b9e137 (``fairseq_signals/models/wav2vec2/wav2vec2.py``, ``models/ecg_transformer.py``,
``modules/{conv_feature_extraction,conv_positional_encoding,gumbel_vector_quantizer}.py``). The
facts are taken from that code; the code here is written anew. Where each is, at that commit
(paths under ``fairseq_signals/``)::

    conv feature encoder   modules/conv_feature_extraction.py:23-78 (GroupNorm first: 52-58, 74)
    feature penalty        models/wav2vec2/wav2vec2.py:254-262
    LayerNorm, projection  models/ecg_transformer.py:87-95; models/wav2vec2/wav2vec2.py:264-297
    span mask, mask_emb    models/transformer.py:133-136, 150-172; data/data_utils.py:18-140
    conv positional        modules/conv_positional_encoding.py:15-35
    post-LN Transformer    modules/transformer_encoder.py:17-45, 99-105;
                           modules/transformer_encoder_layer.py:89-113
    quantiser              modules/gumbel_vector_quantizer.py:90-93 (temperature), 147-209;
                           models/wav2vec2/wav2vec2.py:107-118, 348-356
    distractors            models/wav2vec2/wav2vec2.py:157-213
    logits                 models/wav2vec2/wav2vec2.py:215-228 (cosine / 0.1: line 27), 383-390
    diversity, penalty     models/wav2vec2/wav2vec2.py:425-437

Architecture (input ``(batch, 12, samples)`` in mV, absent leads zero-filled)::

    conv feature encoder   bias-free Conv1d(k, stride) + GELU per layer; GroupNorm(C groups) after the
                           first (fairseq ``extractor_mode="default"``)  -> (batch, C, T)
    feature penalty        mean of the squared conv features (before the LayerNorm)
    LayerNorm(C) -> Linear(C, D) (only when C != D) -> dropout_input
    span mask              masked steps replaced by a learned vector ``mask_emb``
    + conv positional      Conv1d(D, D, conv_pos, groups, weight norm over dim 2) -> SamePad -> GELU
    LayerNorm(D) -> dropout -> L post-LN Transformer layers (GELU FFN, scaled_dot_product_attention)
    context (batch, T, D)

Pre-training heads (:class:`Wav2Vec2Pretrainer`): a Gumbel-softmax product quantiser (G groups of V
entries) of the *unmasked* LayerNorm features at the masked steps -> ``project_q``; the context at
the masked steps -> ``final_proj``; cosine similarity / 0.1 against the target and ``K``
distractors (other masked steps of the same sequence).

Sampling frequency: the official configs run at 500 Hz with ``[(256, 2, 2)] * 4`` (stride 16, one
step per 32 ms, 156 steps per 5-s segment). The book runs at 100 Hz and uses ``[(C, 2, 2)] * 2``
(stride 4, one step per 40 ms, 125 steps per 5 s), so a time step covers about the same duration
and the span masking (10 steps) keeps its meaning.

Differences from fairseq-signals, all deliberate: every random draw (span masks, distractors,
Gumbel noise) may be passed in explicitly (drawn per sample by :mod:`ecgbook.lead_agnostic_ssl`, so
a data-parallel step equals a single-process one); each sequence keeps its own number of masked
steps (fairseq trims every sequence of a batch to the batch minimum so it can reshape); no padding
masks (all segments have one length).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .common import count_parameters  # noqa: F401  (public here too)

#: 100 Hz adaptation of the official ``[(256, 2, 2)] * 4`` at 500 Hz (see the module docstring).
CONV_LAYERS_100HZ = ((256, 2, 2), (256, 2, 2))


@dataclass
class Wav2Vec2Config:
    """Sizes and settings of the encoder and its pre-training heads.

    Defaults are the paper / official configuration (``config/pretraining/w2v_cmsc_rlm.yaml`` and
    the model dataclasses' defaults), with the conv strides adapted to 100 Hz.
    ``latent_temp`` is ``(start, end, decay per update)`` of the Gumbel temperature.
    """

    conv_layers: tuple = CONV_LAYERS_100HZ
    in_leads: int = 12
    embed_dim: int = 768
    layers: int = 12
    heads: int = 12
    ffn_dim: int = 3072
    conv_pos: int = 128
    conv_pos_groups: int = 16
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.1
    dropout_features: float = 0.1
    feature_grad_mult: float = 0.1
    mask_prob: float = 0.65
    mask_length: int = 10
    latent_vars: int = 320
    latent_groups: int = 2
    final_dim: int = 256
    num_negatives: int = 100
    logit_temp: float = 0.1
    latent_temp: tuple = (2.0, 0.5, 0.999995)

    def to_dict(self) -> dict:
        """JSON-friendly dict (tuples as lists)."""
        return {k: (list(map(list, v)) if k == "conv_layers" else (list(v) if isinstance(v, tuple) else v))
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Wav2Vec2Config":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["conv_layers"] = tuple(tuple(c) for c in d["conv_layers"])
        d["latent_temp"] = tuple(d["latent_temp"])
        return cls(**d)


#: Named sizes. ``paper``: 12 layers, d 768 (the paper's); ``tutorial``: a CPU-sized model (3 layers,
#: d 96, 2 x 160 codebook entries, 20 distractors; ~0.45 M parameters);
#: ``smoke``: a toy for CI plumbing.
SIZES = {
    "paper": {},
    "tutorial": dict(conv_layers=((96, 2, 2), (96, 2, 2)), embed_dim=96, layers=3, heads=4, ffn_dim=384,
                     conv_pos=32, conv_pos_groups=8, final_dim=64, num_negatives=20, latent_vars=160),
    "smoke": dict(conv_layers=((32, 2, 2), (32, 2, 2)), embed_dim=32, layers=1, heads=2, ffn_dim=64,
                  conv_pos=16, conv_pos_groups=4, final_dim=16, latent_vars=16, num_negatives=10),
}


def wav2vec2_config(size: str = "paper", **overrides) -> Wav2Vec2Config:
    """A :class:`Wav2Vec2Config` of a named size (:data:`SIZES`), with ``overrides``.

    Raises ``ValueError`` for an unknown size or setting.
    """
    if size not in SIZES:
        raise ValueError(f"unknown wav2vec 2.0 size {size!r}; expected one of {sorted(SIZES)}")
    try:
        return replace(Wav2Vec2Config(), **{**SIZES[size], **overrides})
    except TypeError as exc:
        raise ValueError(f"wav2vec2_config: {exc}") from exc


class GradMultiply(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``scale`` (fairseq ``GradMultiply``)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class ConvFeatureEncoder(nn.Module):
    """Bias-free strided convolutions with GELU; GroupNorm (one group per channel) after the first.

    Input ``(batch, leads, samples)`` → output ``(batch, C, T)`` with
    ``T = floor((T_prev - k) / stride + 1)`` per layer. Source: fairseq-signals
    ``modules/conv_feature_extraction.py`` (mode ``default``, ``conv_bias=False``, Kaiming init).
    """

    def __init__(self, conv_layers, in_leads: int = 12):
        super().__init__()
        blocks, c_in = [], in_leads
        for i, (c, k, s) in enumerate(conv_layers):
            conv = nn.Conv1d(c_in, c, k, stride=s, bias=False)
            nn.init.kaiming_normal_(conv.weight)
            parts = [conv] + ([nn.GroupNorm(c, c, affine=True)] if i == 0 else []) + [nn.GELU()]
            blocks.append(nn.Sequential(*parts))
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        self.conv_layers = tuple(tuple(c) for c in conv_layers)

    def output_length(self, samples: int) -> int:
        """Number of time steps for an input of ``samples`` samples."""
        for _, k, s in self.conv_layers:
            samples = (samples - k) // s + 1
        return int(samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class ConvPositionalEmbedding(nn.Module):
    """Relative positional information from a grouped convolution over time (wav2vec 2.0).

    ``Conv1d(D, D, kernel, padding=kernel//2, groups)`` with weight normalisation over dim 2, the
    extra step of an even kernel removed (SamePad), then GELU. Input and output ``(batch, T, D)``.
    Source: fairseq-signals ``modules/conv_positional_encoding.py``.
    """

    def __init__(self, dim: int, kernel: int = 128, groups: int = 16):
        super().__init__()
        if dim % groups:
            raise ValueError(f"embedding dim {dim} is not divisible by conv_pos_groups {groups}")
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * dim)))
        nn.init.zeros_(conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.remove:
            y = y[..., :-self.remove]
        return F.gelu(y).transpose(1, 2)


class TransformerLayer(nn.Module):
    """Post-LN Transformer block (fairseq ``layer_norm_first=False``) with fused attention.

    ``x = LN(x + drop(attn(x)))``; ``x = LN(x + drop(W2 drop_act(gelu(W1 x))))``. Attention is
    :func:`torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient kernels on
    GPU). Input and output ``(batch, T, D)``.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.1, attention_dropout: float = 0.1,
                 activation_dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {heads} heads")
        self.heads, self.dropout, self.attention_dropout, self.activation_dropout = (
            heads, dropout, attention_dropout, activation_dropout)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attention_dropout if self.training else 0.0)
        a = a.transpose(1, 2).reshape(b, t, d)
        x = self.norm1(x + F.dropout(self.out_proj(a), self.dropout, self.training))
        h = F.dropout(F.gelu(self.fc1(x)), self.activation_dropout, self.training)
        return self.norm2(x + F.dropout(self.fc2(h), self.dropout, self.training))


def _init_bert(module: nn.Module) -> None:
    """fairseq ``init_bert_params`` for linear layers: normal(0, 0.02) weights, zero bias."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Wav2Vec2Encoder(nn.Module):
    """The ECG Transformer encoder shared by pre-training and the downstream models.

    ``forward(source, mask=None)`` with ``source`` ``(batch, leads, samples)`` and ``mask``
    ``(batch, T)`` bool (masked time steps) returns a dict:

    ``x`` ``(batch, T, D)`` context; ``features`` ``(batch, T, C)`` unmasked LayerNorm features
    (after ``dropout_features``; the quantiser's input); ``features_pen_sum`` and
    ``features_numel`` (sum and count of the squared conv outputs, the feature penalty's parts).

    ``feature_grad_mult``: 1 trains the conv encoder normally, 0 freezes it (run under
    ``no_grad``; the official fine-tuning setting), in between scales its gradient (0.1 in the
    official pre-training).
    """

    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.cfg = cfg
        self.feature_extractor = ConvFeatureEncoder(cfg.conv_layers, cfg.in_leads)
        c = cfg.conv_layers[-1][0]
        self.layer_norm = nn.LayerNorm(c)
        self.post_extract_proj = nn.Linear(c, cfg.embed_dim) if c != cfg.embed_dim else None
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.dropout_features = nn.Dropout(cfg.dropout_features)
        self.mask_emb = nn.Parameter(torch.empty(cfg.embed_dim).uniform_())
        self.pos_conv = ConvPositionalEmbedding(cfg.embed_dim, cfg.conv_pos, cfg.conv_pos_groups)
        self.encoder_norm = nn.LayerNorm(cfg.embed_dim)
        self.layers = nn.ModuleList(TransformerLayer(cfg.embed_dim, cfg.heads, cfg.ffn_dim, cfg.dropout,
                                                     cfg.attention_dropout, cfg.activation_dropout)
                                    for _ in range(cfg.layers))
        self.layers.apply(_init_bert)
        self.feature_grad_mult = cfg.feature_grad_mult

    def time_steps(self, samples: int) -> int:
        """Number of encoder time steps for ``samples`` input samples."""
        return self.feature_extractor.output_length(samples)

    def forward(self, source: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        if source.dim() != 3 or source.shape[1] != self.cfg.in_leads:
            raise ValueError(f"expected (batch, {self.cfg.in_leads} leads, samples), got {tuple(source.shape)}")
        if self.feature_grad_mult > 0:
            conv = self.feature_extractor(source)
            if self.feature_grad_mult != 1.0:
                conv = GradMultiply.apply(conv, self.feature_grad_mult)
        else:
            with torch.no_grad():
                conv = self.feature_extractor(source)
        conv32 = conv.float()
        pen_sum, numel = conv32.pow(2).sum(), conv32.numel()
        features = self.layer_norm(conv.transpose(1, 2))
        unmasked = self.dropout_features(features)
        x = self.post_extract_proj(features) if self.post_extract_proj is not None else features
        x = self.dropout_input(x)
        if mask is not None:
            if mask.shape != x.shape[:2]:
                raise ValueError(f"mask shape {tuple(mask.shape)} does not match (batch, T) = {tuple(x.shape[:2])}")
            x = torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)
        x = x + self.pos_conv(x)
        x = F.dropout(self.encoder_norm(x), self.cfg.dropout, self.training)
        for layer in self.layers:
            x = layer(x)
        return {"x": x, "features": unmasked, "features_pen_sum": pen_sum, "features_numel": numel}

    def pooled(self, source: torch.Tensor) -> torch.Tensor:
        """Mean over time of the context, ``(batch, D)`` (the downstream and CMSC representation)."""
        return self.forward(source)["x"].mean(1)

    def set_dropouts(self, *, dropout: float, attention_dropout: float, activation_dropout: float,
                     dropout_input: float) -> "Wav2Vec2Encoder":
        """Set the Transformer's dropout rates in place (fine-tuning overrides them, as fairseq's
        ``arg_overrides`` in ``models/transformer.py`` ``from_pretrained``); returns ``self``."""
        self.cfg = replace(self.cfg, dropout=dropout, attention_dropout=attention_dropout,
                           activation_dropout=activation_dropout, dropout_input=dropout_input)
        self.dropout_input.p = dropout_input
        for layer in self.layers:
            layer.dropout, layer.attention_dropout, layer.activation_dropout = (
                dropout, attention_dropout, activation_dropout)
        return self


class GumbelQuantizer(nn.Module):
    """Product quantiser with a straight-through Gumbel-softmax (wav2vec 2.0, Sec. 2 and 3.2).

    A linear map gives logits ``(N, G, V)``; in training each group picks one of ``V`` codebook
    entries by ``hard`` Gumbel-softmax at temperature ``tau`` (one-hot forward, softmax gradient),
    in evaluation by argmax; the chosen entries of the ``G`` groups are concatenated to
    ``(N, vq_dim)``. Source: fairseq-signals ``modules/gumbel_vector_quantizer.py``
    (``combine_groups=False``, ``weight_proj_depth=1``; uniform codebook init, normal(0, 1)
    projection).

    ``forward(x (N, C), noise=None)``: ``noise`` ``(N, G, V)`` standard Gumbel samples (drawn here
    when ``None``). Returns ``q`` ``(N, vq_dim)``, ``codes`` ``(N, G)`` chosen indices,
    ``prob_sum`` ``(G, V)`` sum over ``N`` of the softmax probabilities (no noise),
    ``hard_sum`` ``(G, V)`` counts of chosen entries, ``n`` = N.
    """

    def __init__(self, dim: int, num_vars: int = 320, groups: int = 2, vq_dim: int = 256, temp=(2.0, 0.5, 0.999995)):
        super().__init__()
        if vq_dim % groups:
            raise ValueError(f"vq_dim {vq_dim} must be divisible by {groups} groups")
        self.groups, self.num_vars = groups, num_vars
        self.vars = nn.Parameter(torch.empty(groups * num_vars, vq_dim // groups).uniform_())
        self.weight_proj = nn.Linear(dim, groups * num_vars)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        self.max_temp, self.min_temp, self.temp_decay = temp
        self.curr_temp = self.max_temp

    def set_num_updates(self, num_updates: int) -> None:
        """Anneal ``tau = max(start * decay**updates, end)`` (fairseq ``set_num_updates``)."""
        self.curr_temp = max(self.max_temp * self.temp_decay ** num_updates, self.min_temp)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> dict:
        n = x.shape[0]
        logits = self.weight_proj(x).float().view(n, self.groups, self.num_vars)
        hard_idx = logits.argmax(-1)
        hard = F.one_hot(hard_idx, self.num_vars).float()
        probs = logits.softmax(-1)
        if self.training:
            if noise is None:
                noise = -torch.empty_like(logits).exponential_().log()
            soft = ((logits + noise) / self.curr_temp).softmax(-1)
            idx = soft.argmax(-1)
            onehot = F.one_hot(idx, self.num_vars).float()
            onehot = onehot - soft.detach() + soft           # straight-through estimator
        else:
            idx, onehot = hard_idx, hard
        vars_ = self.vars.view(self.groups, self.num_vars, -1).float()
        q = torch.einsum("ngv,gvd->ngd", onehot, vars_).reshape(n, -1)
        return {"q": q, "codes": idx, "prob_sum": probs.sum(0), "hard_sum": hard.sum(0), "n": n}


def perplexity(prob_sum: torch.Tensor, n) -> torch.Tensor:
    """Sum over groups of ``exp(entropy)`` of the average distribution ``prob_sum / n`` ``(G, V)``.

    Equals ``G * V`` for uniform codebook use and ``G`` when each group always picks one entry
    (fairseq ``prob_perplexity`` / ``code_perplexity``).
    """
    p = prob_sum / n
    return torch.exp(-(p * torch.log(p + 1e-7)).sum(-1)).sum()


class Wav2Vec2Pretrainer(nn.Module):
    """Encoder plus the wav2vec 2.0 pre-training heads (quantiser, ``project_q``, ``final_proj``).

    ``forward(source, mask, negatives_u=None, gumbel=None)``:

    source ``(batch, leads, samples)``; mask ``(batch, T)`` bool, at least 2 masked steps per sequence
    (``None``: no masking, and only ``{"pooled"}`` is returned — the CMSC-alone objective);
    ``negatives_u`` ``(batch, T, K)`` uniform [0, 1) numbers that pick the distractors; ``gumbel``
    ``(batch, T, G, V)`` Gumbel noise (row ``j`` serves the ``j``-th masked step in time order). Drawn
    from the global RNG when ``None``.

    Returns a dict: ``logits`` ``(batch, M, 1 + K)`` (column 0 = the true quantised target,
    ``-inf`` where a distractor equals it), ``valid`` ``(batch, M)`` bool (``M`` = the largest
    number of masked steps; shorter sequences are padded), ``neg_index`` ``(batch, M, K)``
    positions (into the masked steps) of the distractors, ``pooled`` ``(batch, D)`` mean of the
    context over time, quantiser statistics ``prob_sum``, ``hard_sum``, ``n``, the feature penalty
    parts, and ``temp``.
    """

    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.cfg = cfg
        self.encoder = Wav2Vec2Encoder(cfg)
        c = cfg.conv_layers[-1][0]
        self.quantizer = GumbelQuantizer(c, cfg.latent_vars, cfg.latent_groups, cfg.final_dim, cfg.latent_temp)
        self.project_q = nn.Linear(cfg.final_dim, cfg.final_dim)
        self.final_proj = nn.Linear(cfg.embed_dim, cfg.final_dim)

    def set_num_updates(self, num_updates: int) -> None:
        """Gumbel temperature schedule (see :meth:`GumbelQuantizer.set_num_updates`)."""
        self.quantizer.set_num_updates(num_updates)

    def forward(
        self,
        source: torch.Tensor,
        mask: torch.Tensor,
        negatives_u: torch.Tensor | None = None,
        gumbel: torch.Tensor | None = None,
    ) -> dict:
        if mask is None:  # no wav2vec 2.0 term (CMSC alone): the pooled context only
            return {"pooled": self.encoder(source)["x"].mean(1)}
        enc = self.encoder(source, mask)
        x, feats = enc["x"], enc["features"]
        b, t, _ = x.shape
        counts = mask.sum(1)
        if int(counts.min()) < 2:
            raise ValueError(
                "every sequence needs at least 2 masked steps "
                "(one target and one distractor)"
            )
        m = int(counts.max())
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[
            :, :m
        ]  # masked steps first, in time order
        valid = torch.arange(m, device=x.device)[None, :] < counts[:, None]
        rows = torch.arange(b, device=x.device)[:, None]
        ctx = self.final_proj(x[rows, order])  # (b, m, F)
        k = self.cfg.num_negatives
        if gumbel is None and self.training:
            gumbel = (
                -torch.empty(
                    b, t, self.cfg.latent_groups, self.cfg.latent_vars, device=x.device
                )
                .exponential_()
                .log()
            )
        flat_valid = valid.reshape(-1)
        target_in = feats[rows, order].reshape(b * m, -1)[flat_valid]
        noise = (
            gumbel[
                rows, torch.arange(m, device=x.device)[None, :].expand(b, m)
            ].reshape(b * m, *gumbel.shape[2:])[flat_valid]
            if gumbel is not None
            else None
        )
        qout = self.quantizer(target_in, noise)
        y = x.new_zeros(b * m, self.cfg.final_dim, dtype=qout["q"].dtype)
        y[flat_valid] = qout["q"]
        y = self.project_q(y.view(b, m, -1))  # (b, m, F)
        if negatives_u is None:
            negatives_u = torch.rand(b, t, k, device=x.device)
        u = negatives_u[:, :m, :k]
        own = torch.arange(m, device=x.device)[None, :, None]
        neg = (
            (u * (counts[:, None, None] - 1))
            .long()
            .clamp_max(counts[:, None, None] - 2)
        )
        neg = neg + (neg >= own).long()  # skip the step itself
        negs = y[rows[..., None], neg]  # (b, m, K, F)
        targets = torch.cat([y[:, :, None], negs], dim=2)
        c_n = F.normalize(ctx.float(), dim=-1, eps=1e-8)
        t_n = F.normalize(targets.float(), dim=-1, eps=1e-8)
        logits = (
            torch.einsum("bmf,bmkf->bmk", c_n, t_n) / self.cfg.logit_temp
        )  # cosine / 0.1
        same = (negs == y[:, :, None]).all(-1)
        logits = torch.cat(
            [logits[..., :1], logits[..., 1:].masked_fill(same, float("-inf"))], dim=-1
        )
        return {
            "logits": logits,
            "valid": valid,
            "neg_index": neg,
            "pooled": x.mean(1),
            "prob_sum": qout["prob_sum"],
            "hard_sum": qout["hard_sum"],
            "n": qout["n"],
            "features_pen_sum": enc["features_pen_sum"],
            "features_numel": enc["features_numel"],
            "temp": self.quantizer.curr_temp,
        }


class W2VClassifier(nn.Module):
    """Downstream model: the encoder, mean pooling over time, dropout, a linear head (xavier, zero bias).

    Input ``(batch, 12, samples)`` → logits ``(batch, classes)``. ``freeze``: ``"conv"`` (the official
    fine-tuning: ``feature_grad_mult 0.0``, the Transformer trains), ``"all"`` (a linear probe:
    encoder frozen and in eval mode), or ``"none"``. Source: fairseq-signals
    ``models/classification/ecg_transformer_classifier.py``; ``config/finetuning/ecg_transformer/diagnosis.yaml``.
    """

    def __init__(self, encoder: Wav2Vec2Encoder, n_classes: int, freeze: str = "conv", final_dropout: float = 0.0):
        super().__init__()
        if freeze not in ("conv", "all", "none"):
            raise ValueError(f"freeze must be 'conv', 'all' or 'none', not {freeze!r}")
        self.encoder, self.freeze = encoder, freeze
        self.encoder.feature_grad_mult = 0.0 if freeze in ("conv", "all") else 1.0
        if freeze == "all":
            for p in self.encoder.parameters():
                p.requires_grad_(False)
        self.final_dropout = nn.Dropout(final_dropout)
        self.proj = nn.Linear(encoder.cfg.embed_dim, n_classes)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze == "all":
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)["x"]
        return self.proj(self.final_dropout(h).mean(1))


class W2VArcFace(nn.Module):
    """Identification model: the encoder, mean pooling over time, an ArcFace head over identities.

    ``forward(x (batch, 12, samples), target (batch,) int64 or None) -> logits (batch, n_ids)``
    float32 (:class:`~ecgbook.models.arcface.ArcFaceHead`: margin at the target when given);
    :meth:`pooled` gives the ``(batch, D)`` embedding used for retrieval. ``freeze="conv"``: the
    conv feature encoder is frozen (``feature_grad_mult: 0.0`` of the official identification
    config), ``"none"``: everything trains. Source: fairseq-signals
    ``models/identification/arcface.py`` (mean over time, L2 norm, cosine to the normalised
    class weights), ``examples/w2v_cmsc/config/finetuning/ecg_transformer/identification.yaml``.
    Raises ``ValueError`` for another ``freeze``.
    """

    def __init__(self, encoder: Wav2Vec2Encoder, n_ids: int, scale: float = 192.0, margin: float = 1.0,
                 freeze: str = "conv"):
        super().__init__()
        from .arcface import ArcFaceHead
        if freeze not in ("conv", "none"):
            raise ValueError(f"freeze must be 'conv' or 'none', not {freeze!r}")
        self.encoder = encoder
        self.encoder.feature_grad_mult = 0.0 if freeze == "conv" else 1.0
        self.head = ArcFaceHead(encoder.cfg.embed_dim, n_ids, scale=scale, margin=margin)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, D)`` mean over time of the context."""
        return self.encoder(x)["x"].mean(1)

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.pooled(x), target)


def encoder_state(pretrainer_state: dict) -> dict:
    """The ``encoder.*`` entries of a :class:`Wav2Vec2Pretrainer` state dict, prefix removed."""
    return {k[len("encoder."):]: v for k, v in pretrainer_state.items() if k.startswith("encoder.")}


def load_encoder(path, cfg: Wav2Vec2Config | None = None, map_location="cpu") -> Wav2Vec2Encoder:
    """Load a pre-trained encoder from a checkpoint written by :func:`save_pretrained` (``weights_only=True``).

    Every encoder key must match (``load_state_dict(strict=True)``). Raises ``FileNotFoundError``
    for a missing file and ``RuntimeError`` (from torch) naming missing or unexpected keys.
    """
    state = torch.load(path, map_location=map_location, weights_only=True)
    cfg = cfg or Wav2Vec2Config.from_dict(state["config"])
    enc = Wav2Vec2Encoder(cfg)
    enc.load_state_dict(encoder_state(state["model"]), strict=True)
    return enc


def save_pretrained(model: Wav2Vec2Pretrainer, path, extra: dict | None = None) -> None:
    """Write ``{"model": state_dict, "config": cfg dict, **extra}`` atomically (``path.part`` then rename)."""
    import os
    from pathlib import Path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save({"model": model.state_dict(), "config": model.cfg.to_dict(), **(extra or {})}, tmp)
    os.replace(tmp, path)
