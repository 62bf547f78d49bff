"""A converter function generated per fixed-length template: records to flows.

Why generated code: the generic path in :func:`~vigile.ingest.netflow.templates.
decode_records` looks up every role and time kind per record, which caps one core
at about 60,000 flows/s. A template is fixed for thousands of records, so its
lookups are resolved once and written out as a single list comprehension (the
technique ``collections.namedtuple`` uses). Only integers chosen here (tuple
indices) go into the generated source, never bytes from the network.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

NTP_EPOCH_OFFSET = 2_208_988_800
Converter = Callable[[list[tuple[Any, ...]], int, int, Callable[[bytes], str]], list[Any]]


def _time(roles: dict[str, int], prefix: str, uptime: bool) -> str:
    if (i := roles.get(prefix + "ms")) is not None:
        return f"r[{i}] * 1000"
    if (i := roles.get(prefix + "s")) is not None:
        return f"r[{i}] * 1000000"
    if (i := roles.get(prefix + "ntp")) is not None:
        return (
            f"((r[{i}] >> 32) - {NTP_EPOCH_OFFSET}) * 1000000 "
            f"+ ((r[{i}] & 0xFFFFFFFF) * 1000000 >> 32)"
        )
    if (i := roles.get(prefix + "delta")) is not None:
        return f"export_us - r[{i}]"
    if (i := roles.get(prefix + "uptime")) is not None and uptime:
        return f"(origin_ms + r[{i}]) * 1000"
    return "export_us"


def build_converter(
    roles: dict[str, int], v6_roles: Collection[str] = (), uptime: bool = True
) -> Converter | None:
    """Source and compile the converter for a template whose role values are all ints.

    With ``uptime`` false, uptime-relative times are replaced by the export time (for
    an IPFIX exporter whose system init time is not known yet).

    >>> conv = build_converter({"src": 0, "dst": 1, "pkts": 2, "bytes": 3, "start_s": 4})
    >>> conv([(167772161, 167772162, 3, 180, 1)], 0, 0, str)
    [(1000000, 0, 167772161, None, 167772162, None, 0, 3, 180, None, None, None, None)]
    """
    if "src" not in roles or "dst" not in roles:
        return None

    def val(role: str, default: str) -> str:
        i = roles.get(role)
        return default if i is None else f"r[{i}]"

    proto = val("proto", "0")
    sport, dport = val("sport", "None"), val("dport", "None")
    if "proto" in roles:
        code = val("icmp", f"({dport} or 0)")
        sport = f"(({code}) >> 8 & 255 if {proto} in (1, 58) else {sport})"
        dport = f"(({code}) & 255 if {proto} in (1, 58) else {dport})"
    parts = [
        _time(roles, "start_", uptime),
        _time(roles, "end_", uptime),
        f"ntop6(r[{roles['src']}])" if "src" in v6_roles else f"r[{roles['src']}]",
        sport,
        f"ntop6(r[{roles['dst']}])" if "dst" in v6_roles else f"r[{roles['dst']}]",
        dport,
        proto,
        val("pkts", "0"),
        val("bytes", "0"),
        val("rpkts", "None"),
        val("rbytes", "None"),
        val("flags", "None"),
        val("rflags", "None"),
    ]
    source = (
        "def convert(records, export_us, origin_ms, ntop6):\n"
        f"    return [({', '.join(parts)}) for r in records]\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<netflow template>", "exec"), namespace)
    converter: Converter = namespace["convert"]
    return converter
