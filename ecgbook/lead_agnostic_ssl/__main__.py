"""``python -m ecgbook.lead_agnostic_ssl``: see :func:`ecgbook.lead_agnostic_ssl.cli.main`."""
from .cli import main

raise SystemExit(main())
