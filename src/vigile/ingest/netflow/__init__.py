"""NetFlow v5, v9 and IPFIX decoding: bytes of one export datagram in, flows out.

The decoders are plain functions over bytes; the only state they touch is the
:class:`~vigile.ingest.netflow.cache.TemplateCache` passed in (templates and
options per exporter and observation domain, data sets parked until their
template arrives). Nothing here does I/O, so the same code serves the live UDP
collector (:mod:`vigile.ingest.collector`) and the fuzz tests.

Contract of :func:`decode_datagram` (and of ``v5.decode``, ``v9.decode``,
``ipfix.decode``):

* It returns a :class:`DecodeResult`, or raises :class:`DecodeError` when the
  datagram cannot be read at all (too short, unknown version, a header length
  that disagrees with the datagram). It never raises anything else, for any
  byte string: that is what the Hypothesis tests hold it to.
* A datagram whose header is fine but one of whose sets is malformed yields the
  flows of its good sets and one entry per bad set in ``DecodeResult.problems``;
  the caller counts the datagram as malformed and keeps it aside.
* A data set whose template is not known yet is parked in the cache (bounded in
  count and age) and decoded when the template arrives; sets that expire or are
  evicted unread are counted by the cache as ``unknown_template``.
* Each flow is a :data:`Flow` tuple; timestamps are Unix microseconds, derived
  from the export header and the exporter's uptime as the RFCs prescribe; IPv4
  addresses are 32-bit integers, IPv6 addresses text (:func:`address_text`).
"""

from __future__ import annotations

from vigile.ingest.netflow import ipfix, v5, v9
from vigile.ingest.netflow.cache import TemplateCache
from vigile.ingest.netflow.templates import DecodeError, DecodeResult, Flow, address_text

__all__ = [
    "DecodeError",
    "DecodeResult",
    "Flow",
    "TemplateCache",
    "address_text",
    "decode_datagram",
]


def decode_datagram(data: bytes, exporter: str, cache: TemplateCache, now: float) -> DecodeResult:
    """Decode one export datagram of any supported version.

    Args:
        data: The UDP payload as received.
        exporter: The exporter's address (templates are kept per exporter).
        cache: Templates, options and parked sets; updated in place.
        now: Current time in seconds (for the age of parked sets).

    Raises:
        DecodeError: The datagram is unreadable (short, unknown version, bad length).

    >>> decode_datagram(b"\\x00\\x07", "192.0.2.1", TemplateCache(), 0.0)
    Traceback (most recent call last):
    ...
    vigile.ingest.netflow.templates.DecodeError: datagram of 2 bytes is too short for a header
    """
    if len(data) < 4:
        raise DecodeError(f"datagram of {len(data)} bytes is too short for a header")
    version = int.from_bytes(data[:2], "big")
    if version == 5:
        return v5.decode(data, exporter)
    if version == 9:
        return v9.decode(data, exporter, cache, now)
    if version == 10:
        return ipfix.decode(data, exporter, cache, now)
    raise DecodeError(f"unknown NetFlow version {version}")
