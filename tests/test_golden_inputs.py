"""Golden files: NetFlow datagrams from softflowd and an EVE log, with expected output.

Regenerate with ``.venv/bin/python -m tests.golden.regenerate`` and review the diff.
"""

from __future__ import annotations

import json

import pytest
from tests.golden.regenerate import pairs, render

CASES = pairs()


def test_every_netflow_version_has_a_golden_case() -> None:
    names = " ".join(p[0].name for p in CASES)
    for version in ("v5", "v9", "ipfix", "ipfix-biflow"):
        assert f"softflowd-{version}-" in names


@pytest.mark.parametrize(("source", "expected", "compute"), CASES, ids=[p[0].name for p in CASES])
def test_golden(source, expected, compute) -> None:  # type: ignore[no-untyped-def]
    assert expected.exists(), f"run `python -m tests.golden.regenerate` for {source.name}"
    got = render(compute(source))
    assert json.loads(got) == json.loads(expected.read_text())


def test_parquet_inputs_are_what_their_script_writes() -> None:
    import pyarrow.parquet as pq
    from tests.golden.parquet.inputs import HERE, INPUTS

    assert {p[0].name for p in CASES if p[0].suffix == ".parquet"} == set(INPUTS)
    for name, (make, _) in INPUTS.items():
        stored, written = pq.read_table(HERE / name), make()
        assert stored.equals(written), name
        assert stored.schema.metadata == written.schema.metadata, name
