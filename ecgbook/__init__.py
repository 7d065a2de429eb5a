"""ecgbook: the package behind the ecgbook Jupyter Book.

Layers, each importing only the ones before it:

``ecgbook.config`` → ``ecgbook.data`` (download, readers, cache) → ``ecgbook.signal`` (filters,
resampling, spectrograms) → ``ecgbook.models`` → ``ecgbook.train`` → ``ecgbook.metrics`` →
``ecgbook.plot``; ``ecgbook.results`` and ``ecgbook.profiles`` hold run bookkeeping.
"""
__version__ = "0.1.0"
