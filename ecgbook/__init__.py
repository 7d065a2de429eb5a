"""ecgbook: the package behind the ecgbook Jupyter Book.

Layers, lowest first; each module imports only its own layer and the ones before it (checked by
``tests/test_layers.py``):

1. ``files and config``: :mod:`~ecgbook.config` (where things live), :mod:`~ecgbook.files`
   (checksums, locks, atomic writes), :mod:`~ecgbook.device`, :mod:`~ecgbook.results` (results
   files), :mod:`~ecgbook.health` (run-health checks on training histories).
2. ``signal``: filters, resampling, spectrograms (pure NumPy/SciPy/torch functions).
3. ``data``: download and verification, record readers, caches, the datasets' splits (readers
   resample and filter with :mod:`~ecgbook.signal`).
4. ``models``: the networks, in plain torch.
5. ``train``: :mod:`~ecgbook.batches`, :mod:`~ecgbook.train` (the one training loop),
   :mod:`~ecgbook.distributed`, :mod:`~ecgbook.augment`, :mod:`~ecgbook.checkpoints`.
6. ``evaluation``: :mod:`~ecgbook.metrics`, :mod:`~ecgbook.evaluation` (folds, cross-validation),
   :mod:`~ecgbook.protocol` (the PTB-XL protocol and the multi-seed comparisons).
7. ``plot``.
8. ``methods shared by techniques``: :mod:`~ecgbook.ssl` (DINO, SimCLR), :mod:`~ecgbook.comparison`
   (the one interface every technique's methods implement, the identical leak-free splits and the
   statistics of a comparison).
9. ``techniques``, one per chapter, named after it: :mod:`~ecgbook.transfer`,
   :mod:`~ecgbook.multimodal_ssl`, :mod:`~ecgbook.mrmnet`, :mod:`~ecgbook.lead_agnostic_ssl`, each a
   package of the same shape (the method, the chapter's experiments as result rows, the
   ``paper``-only protocol apart; no technique imports another).
10. ``techniques side by side``: :mod:`~ecgbook.side_by_side`, the comparison chapter's package:
    it gathers the methods of every technique through :mod:`~ecgbook.comparison` (the only module
    that imports several techniques).
11. ``book``: :mod:`~ecgbook.profiles`, :mod:`~ecgbook.pages`, :mod:`~ecgbook.claims` (the pages'
    sentences checked against their results files), :mod:`~ecgbook.edition`,
    :mod:`~ecgbook.exercises`, :mod:`~ecgbook.book` (the runner).
"""
__version__ = "0.1.0"
