"""Records to flows: times, plausibility, and the data-set entry points v9 and IPFIX share."""

from __future__ import annotations

from vigile.ingest.netflow.cache import Key, TemplateCache
from vigile.ingest.netflow.templates import (
    NTP_EPOCH_OFFSET,
    DecodeResult,
    Flow,
    Template,
    TimeBase,
    _address,
    _int,
    _ntop6,
)


def _time_us(roles: dict[str, int], rec: tuple[object, ...], end: bool, base: TimeBase) -> int:
    prefix = "end_" if end else "start_"
    if (i := roles.get(prefix + "ms")) is not None:
        return _int(rec[i]) * 1000
    if (i := roles.get(prefix + "s")) is not None:
        return _int(rec[i]) * 1_000_000
    if (i := roles.get(prefix + "ntp")) is not None:
        v = _int(rec[i])
        return ((v >> 32) - NTP_EPOCH_OFFSET) * 1_000_000 + ((v & 0xFFFFFFFF) * 1_000_000 >> 32)
    if (i := roles.get(prefix + "delta")) is not None:
        return base.export_us - _int(rec[i])
    if (i := roles.get(prefix + "uptime")) is not None and base.uptime_origin_ms is not None:
        return (base.uptime_origin_ms + _int(rec[i])) * 1000
    return base.export_us


_MAX_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z, the latest a timestamp can hold
_MAX_COUNT = (1 << 63) - 1


def decode_records(tmpl: Template, body: bytes, base: TimeBase, result: DecodeResult) -> None:
    """Turn one data set into flows in ``result``.

    Records without both addresses give no flow; records with counters beyond 2**63
    or times outside years 1970-9999 are counted in ``result.problems``.
    """
    records = tmpl.records(body)
    result.data_records += len(records)
    roles = tmpl.roles
    i_src, i_dst = roles.get("src"), roles.get("dst")
    if i_src is None or i_dst is None:
        return
    origin = base.uptime_origin_ms
    converter = tmpl.converter
    if origin is None or not 0 <= origin <= _MAX_US // 1000 - (1 << 32):
        converter, origin = tmpl.converter_no_uptime, 0
    if converter is not None:
        flows = converter(records, base.export_us, origin, _ntop6)
        if tmpl.risky:
            good = [f for f in flows if _plausible(f)]
            if len(good) < len(flows):
                result.problems.append(
                    f"{len(flows) - len(good)} records with impossible times or counters"
                )
                flows = good
        result.flows.extend(flows)
        return
    get = roles.get
    i_sp, i_dp, i_pr, i_icmp = get("sport"), get("dport"), get("proto"), get("icmp")
    i_pk, i_by, i_rpk, i_rby = get("pkts"), get("bytes"), get("rpkts"), get("rbytes")
    i_fl, i_rfl = get("flags"), get("rflags")
    append = result.flows.append
    implausible = 0
    for rec in records:
        proto = _int(rec[i_pr]) if i_pr is not None else 0
        sport = _int(rec[i_sp]) if i_sp is not None else None
        dport = _int(rec[i_dp]) if i_dp is not None else None
        if proto in (1, 58):
            code = _int(rec[i_icmp]) if i_icmp is not None else (dport or 0)
            sport, dport = code >> 8 & 0xFF, code & 0xFF  # conn convention: type, code
        flow: Flow = (
            _time_us(roles, rec, False, base),
            _time_us(roles, rec, True, base),
            _address(rec[i_src]),
            sport,
            _address(rec[i_dst]),
            dport,
            proto,
            _int(rec[i_pk]) if i_pk is not None else 0,
            _int(rec[i_by]) if i_by is not None else 0,
            _int(rec[i_rpk]) if i_rpk is not None else None,
            _int(rec[i_rby]) if i_rby is not None else None,
            _int(rec[i_fl]) if i_fl is not None else None,
            _int(rec[i_rfl]) if i_rfl is not None else None,
        )
        if not _plausible(flow):
            implausible += 1
            continue
        append(flow)
    if implausible:
        result.problems.append(f"{implausible} records with impossible times or counters")


def _plausible(f: Flow) -> bool:
    """Times within years 1970-9999, counters below 2**63, ports and protocol in range."""
    return (
        0 <= f[0] <= _MAX_US
        and 0 <= f[1] <= _MAX_US
        and max(f[7], f[8], f[9] or 0, f[10] or 0) <= _MAX_COUNT
        and (f[3] or 0) <= 0xFFFF
        and (f[5] or 0) <= 0xFFFF
        and f[6] <= 0xFF
    )


def decode_data_set(
    cache: TemplateCache, key: Key, body: bytes, base: TimeBase, result: DecodeResult, now: float
) -> None:
    """Decode a data set with its template, or park it until the template arrives."""
    tmpl = cache.templates.get(key)
    if tmpl is None:
        cache.park(key, body, base, now)
        result.parked += 1
        return
    if tmpl.options:
        records = tmpl.records(body)
        result.data_records += len(records)
        result.options_records += len(records)
        i_init = tmpl.roles.get("system_init_ms")
        if i_init is not None and records:
            cache.system_init_ms[key[:2]] = _int(records[-1][i_init])
        return
    decode_records(tmpl, body, base, result)


def learn_template(
    cache: TemplateCache, key: Key, tmpl: Template, result: DecodeResult, now: float
) -> None:
    """Add a template and decode the sets that waited for it."""
    result.templates += 1
    for parked in cache.learn(key, tmpl):
        base = parked.base
        if base.uptime_origin_ms is None and key[:2] in cache.system_init_ms:
            base = TimeBase(base.export_us, cache.system_init_ms[key[:2]])
        decode_data_set(cache, key, parked.body, base, result, now)
