"""Command line: ``python -m ecgbook.lead_agnostic_ssl pretrain --profile P --method M --out ckpt.pt``
(single process or ``torchrun``).
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import pandas as pd
import torch

from .. import distributed as dist, profiles
from ..models.wav2vec2 import Wav2Vec2Pretrainer, wav2vec2_config
from .corpus import build_corpus
from .objectives import METHODS, objective
from .pretrain import PretrainConfig, pretrain

# ----------------------------------------------------------------------------------------------
# Command line (single process or torchrun)
# ----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    """``python -m ecgbook.lead_agnostic_ssl pretrain --profile P --method M --out ckpt.pt``.

    Under ``torchrun --nproc_per_node N`` every process joins the group; rank 0 builds the corpus
    cache while the others wait, each rank trains on its share of every global batch
    (``--batch-size`` pairs per process; ``--grad-accum`` steps per update), and rank 0 prints the
    history and writes the checkpoint.
    """

    def positive(kind):
        def parse(text):
            try:
                value = kind(text)
            except ValueError:
                value = None
            if value is None or not math.isfinite(value) or value <= 0:
                raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a finite number'}"
                                                 f" > 0, got {text!r}")
            return value
        return parse

    parser = argparse.ArgumentParser(prog="python -m ecgbook.lead_agnostic_ssl")
    parser.add_argument("command", choices=["pretrain"])
    parser.add_argument("--profile", default="tutorial", choices=profiles.PROFILE_NAMES)
    parser.add_argument("--method", default="W2V+CMSC+RLM", choices=list(METHODS))
    parser.add_argument("--out", required=True, help="checkpoint path (written by rank 0)")
    parser.add_argument("--epochs", type=positive(int), help="default: the profile's pretrain_epochs")
    parser.add_argument("--batch-size", type=positive(int), help="default: the profile's pretrain_batch_size")
    parser.add_argument("--grad-accum", type=positive(int), default=1)
    parser.add_argument("--lr", type=positive(float), help="default: the profile's pretrain_lr")
    args = parser.parse_args(argv)
    out = Path(args.out).absolute()
    folder = next(p for p in out.parents if p.exists())  # missing folders are created on writing
    if out.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        parser.error(f"argument --out: {args.out!r} is a folder or cannot be written ({folder} "
                     f"{'is not a writable folder' if not out.is_dir() else 'exists'}); give a checkpoint file path")
    try:
        dist.environment()
        P = profiles.resolve("lead_agnostic_ssl", args.profile, pretrain_epochs=args.epochs,
                             pretrain_batch_size=args.batch_size, pretrain_lr=args.lr)
    except ValueError as e:
        parser.error(str(e))
    device = dist.init()
    try:
        with dist.main_first():
            corpus = build_corpus(ptbxl_records=P["ptbxl_records"], cinc_records=P["cinc_records"],
                                  cinc_pairs_per_record=P["cinc_pairs_per_record"],
                                  mitdb_pairs_per_record=P["mitdb_pairs_per_record"])
        torch.manual_seed(P["seed"])
        model = Wav2Vec2Pretrainer(wav2vec2_config(P["size"]))
        cfg = PretrainConfig(epochs=P["pretrain_epochs"], batch_size=P["pretrain_batch_size"],
                             lr=P["pretrain_lr"], grad_accum=args.grad_accum, seed=P["seed"],
                             warmup=P["pretrain_warmup"], schedule=P["pretrain_schedule"],
                             anneal_to_end=P["anneal_to_end"])
        res = pretrain(model, corpus, objective(args.method), cfg, device=device, checkpoint=args.out)
        if dist.is_main():
            print(pd.DataFrame(res["history"]).round(4).to_string(index=False))
            print(f"{res['segments_per_s']:.1f} segments/s over {dist.world_size()} process(es); checkpoint {args.out}")
    finally:
        dist.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
