"""Suricata, the real EVE writer, run offline over a capture for the EVE tests.

``suricata -r CAPTURE`` with a minimal configuration written next to its output:
EVE JSON with the requested event types, no rules, checksums not verified (as
vigile's pcap reader, which does not verify them either), Suricata's defaults for
everything else (stream mid-stream pick-up off). It reads the file and exits.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool

CONFIG = """%YAML 1.1
---
default-log-dir: {out}
stream:
  midstream: {midstream}
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
{types}
logging:
  default-log-level: warning
  outputs:
    - console:
        enabled: yes
"""


def run_suricata(
    pcap: Path, out: Path, types: tuple[str, ...] = ("flow",), *, midstream: bool = False
) -> Path:
    """Run Suricata over ``pcap``; returns the path of the EVE file it wrote in ``out``."""
    require_tool("suricata")
    out.mkdir(parents=True, exist_ok=True)
    config, rules = out / "suricata.yaml", out / "empty.rules"
    listed = "\n".join(f"        - {t}" for t in types)
    config.write_text(
        CONFIG.format(out=out, midstream="true" if midstream else "false", types=listed)
    )
    rules.write_text("")
    cmd = ["suricata", "-c", str(config), "-S", str(rules), "-r", str(pcap)]
    cmd += ["-l", str(out), "-k", "none", "--runmode", "single"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out / "eve.json"
