"""vigile: find compromised servers from their traffic, inspect Exchange, restore mail.

The package is laid out by layer; each layer only imports the ones below it::

    cli, web          user-facing commands and the console
    detect            detectors (one per file) and the finding record
    ingest            readers (one per input format) and the ingest pipeline
    store             the store contract and its engines (DuckDB today)
    schema, config    the normalised tables and the network model
"""

__version__ = "0.1.0"
