"""The simulator's output, byte for byte, against reviewed golden files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden" / "simulate"


def _regenerate_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("regenerate", GOLDEN / "regenerate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulate_output_equals_golden(tmp_path: Path) -> None:
    regenerate = _regenerate_module()
    regenerate.generate(tmp_path)
    for name in regenerate.OUTPUTS:
        expected = (GOLDEN / name).read_bytes()
        assert (tmp_path / name).read_bytes() == expected, (
            f"{name} differs from tests/golden/simulate/{name}; if intended, run "
            "python tests/golden/simulate/regenerate.py and review the diff"
        )
