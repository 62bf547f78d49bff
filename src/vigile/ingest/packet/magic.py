"""Capture formats by their first bytes, and flow timeouts: what the pcap reader needs
before it reads a capture.

Kept apart from the compiled passes so that recognising a file, or checking the
reader's options, does not load numba (about 0.25 CPU-s at start-up): ingesting logs
never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


def capture_kind(head: bytes) -> str | None:
    """``pcap``, ``pcapng`` or None, from the first bytes of a file.

    >>> capture_kind(b"\\xd4\\xc3\\xb2\\xa1" + bytes(20)), capture_kind(b"#fields")
    ('pcap', None)
    """
    if head[:4] in PCAP_MAGICS and len(head) >= 24:
        return "pcap"
    if head[:4] == PCAPNG_SHB and head[8:12] in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
        return "pcapng"
    return None


@dataclass(frozen=True)
class Timeouts:
    """Inactivity timeouts in seconds (Zeek's defaults); ``other`` is ICMP and the rest.

    >>> Timeouts(tcp=0)
    Traceback (most recent call last):
    ValueError: the TCP inactivity timeout must be a positive number of seconds, not 0
    """

    tcp: float = 300.0
    udp: float = 60.0
    other: float = 60.0

    def __post_init__(self) -> None:
        for name, value in (("TCP", self.tcp), ("UDP", self.udp), ("ICMP", self.other)):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not 0 < value < float("inf"):
                raise ValueError(
                    f"the {name} inactivity timeout must be a positive number of seconds, "
                    f"not {value!r}"
                )

    def of(self, proto: np.ndarray) -> np.ndarray:
        s = np.where(proto == 6, self.tcp, np.where(proto == 17, self.udp, self.other))
        return (s * 1e9).astype(np.int64)
