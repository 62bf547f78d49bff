"""vigile: find compromised servers from their traffic, inspect Exchange, restore mail.

The package is laid out by layer; each layer only imports the ones below it::

    cli, web          user-facing commands and the console
    detect            detectors (one per file) and the finding record
    ingest            readers (one per input format) and the ingest pipeline
    store             the store contract and its engines (DuckDB today)
    schema, config    the normalised tables and the network model
"""

import os

__version__ = "0.1.0"

# vigile does no linear algebra, but NumPy's OpenBLAS (and SciPy's) starts a pool of
# threads when it is loaded: about 0.1 CPU-s of every command on two cores (a one-packet
# `vigile ingest`: 0.60-0.72 CPU-s with the pool, 0.45-0.51 without). One thread unless
# the user has chosen otherwise; it must be set before NumPy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
