"""Data layer: downloads (:mod:`.download`), record reading (:mod:`.records`), dataset readers and the cache."""
from .download import ChecksumError, DownloadError, MissingFileError, fetch, fetch_physionet
from .records import STANDARD_LEADS, Record, RecordError, read_record

__all__ = ["ChecksumError", "DownloadError", "MissingFileError", "fetch", "fetch_physionet",
           "STANDARD_LEADS", "Record", "RecordError", "read_record"]
