"""Benchmarks: peers measured side by side in the same run (ratios and peak memory).

``python -m bench`` runs them all, ``python -m bench.NAME`` runs one. Convention for a
benchmark module ``bench/NAME.py``: it exposes ``main()``, runs its peers side by side,
and either returns the Markdown body of its section of ``docs/benchmarks.md`` (the
runner writes it under the module's ``HEADING``, default: its name) or writes the
section itself and returns None. Figures are reported, never asserted.
"""
