"""Windows events from JSON lines exports and ``.evtx`` files, normalised.

Four JSON shapes are read, one event per line or one JSON array of events: flat
exports such as the OTRF Security-Datasets (``Channel``, ``EventID``, ``SourceName``,
``Hostname``, ``TimeCreated`` and the event data at top level), Winlogbeat
(``winlog.*``), the ``Event.System``/``Event.EventData`` shape that the ``evtx``
package produces from ``.evtx`` files, and PowerShell's ``Get-WinEvent |
ConvertTo-Json`` (``Id``, ``LogName``, ``/Date(…)/`` times, event data only in the
rendered ``Message``, whose ``Key: value`` lines are read back). Every event becomes a
flat mapping with ``Channel``, ``EventID``, ``Provider``, ``Hostname``, ``Message``
and the event data fields.

Some exports write local time with a ``Z`` suffix in ``TimeCreated``; Sysmon's own
``UtcTime`` field is always UTC. When a file holds both and they differ by the same
whole number of quarter hours, that offset is applied to every event of the file
and reported as a notice, so all sources share one clock in the timeline.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from vigile.exchange.fields import BadLine, parse_time

#: Sysmon events sampled to estimate a file's clock offset.
OFFSET_SAMPLE = 2000


def _text(value: Any) -> str:
    if isinstance(value, dict):
        if "#text" in value:
            return _text(value["#text"])
        return " ".join(_text(v) for k, v in value.items() if k != "#attributes")
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _flat_data(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        return {"Data": _text(data)} if data else {}
    out: dict[str, str] = {}
    for key, value in data.items():
        if key == "#attributes":
            continue
        if isinstance(value, dict) and "#text" not in value and key != "Data":
            for sub, inner in value.items():
                out[sub] = _text(inner)
        else:
            out[key] = _text(value)
    return out


def normalise(event: Mapping[str, Any]) -> dict[str, str]:
    """One event (any of the three shapes) as a flat mapping of strings.

    >>> e = normalise({"Event": {"System": {"EventID": 1, "Channel": "MSExchange Management",
    ...     "Provider": {"#attributes": {"Name": "MSExchange CmdletLogs"}},
    ...     "TimeCreated": {"#attributes": {"SystemTime": "2021-03-14T06:40:12Z"}}},
    ...     "EventData": {"Data": {"#text": ["Set-OabVirtualDirectory", "-ExternalUrl x"]}}}})
    >>> e["Channel"], e["EventID"], e["Provider"]
    ('MSExchange Management', '1', 'MSExchange CmdletLogs')
    >>> e["Message"]
    'Set-OabVirtualDirectory -ExternalUrl x'
    """
    if isinstance(event.get("Event"), dict):
        root = event["Event"]
        system = root.get("System") or {}
        attrs = (system.get("Provider") or {}).get("#attributes") or {}
        created = ((system.get("TimeCreated") or {}).get("#attributes") or {}).get("SystemTime")
        out = _flat_data(root.get("EventData") or root.get("UserData") or {})
        out.update(
            Channel=_text(system.get("Channel")),
            EventID=_text(system.get("EventID")),
            Provider=_text(attrs.get("Name")),
            Hostname=_text(system.get("Computer")),
            TimeCreated=_text(created),
        )
        out.setdefault("Message", out.pop("Data", ""))
        return out
    if isinstance(event.get("winlog"), dict):
        win = event["winlog"]
        out = _flat_data(win.get("event_data") or {})
        out.update(
            Channel=_text(win.get("channel")),
            EventID=_text(win.get("event_id")),
            Provider=_text(win.get("provider_name")),
            Hostname=_text(win.get("computer_name")),
            TimeCreated=_text(event.get("@timestamp")),
            Message=_text(event.get("message")),
        )
        return out
    out = {k: _text(v) for k, v in event.items() if not isinstance(v, (dict, list))}
    if "LogName" in out and "Id" in out:  # PowerShell: Get-WinEvent | ConvertTo-Json
        out.update(Channel=out["LogName"], EventID=out["Id"], Hostname=out.get("MachineName", ""))
        out["TimeCreated"] = _dotnet_date(out.get("TimeCreated", ""))
        out.setdefault("Level", out.get("LevelDisplayName", ""))
    else:
        out["EventID"] = _text(event.get("EventID"))
    out["Provider"] = out.get("SourceName") or out.get("ProviderName") or ""
    out.setdefault("TimeCreated", out.get("@timestamp", ""))
    out.setdefault("Hostname", out.get("Computer", ""))
    out.setdefault("Message", "")
    for key, value in message_fields(out["Message"]).items():
        out.setdefault(key, value)
    return out


def _dotnet_date(value: str) -> str:
    """``/Date(1614737400000)/`` (ConvertTo-Json) as ISO 8601 UTC; other text unchanged.

    >>> _dotnet_date("/Date(1614737400000)/")
    '2021-03-03T02:10:00+00:00'
    """
    match = re.fullmatch(r"/Date\((-?\d+)[^)]*\)/", value)
    if match is None:
        return value
    return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC).isoformat()


#: Security 4688 message labels, as field names the checks use.
MESSAGE_ALIASES = {
    "NewProcessID": "NewProcessId",
    "CreatorProcessID": "ProcessId",
    "CreatorProcessName": "ParentProcessName",
    "ProcessCommandLine": "CommandLine",
}


def message_fields(message: str) -> dict[str, str]:
    """``Key: value`` lines of a rendered message, keys without spaces.

    Exports that keep only the rendered message (PowerShell, some SIEMs) still carry
    Sysmon's and Security's event data this way.

    >>> message_fields("Process Create:\\r\\nImage: C:\\\\x\\\\cmd.exe\\r\\nParentImage: w3wp.exe")
    {'Image': 'C:\\\\x\\\\cmd.exe', 'ParentImage': 'w3wp.exe'}
    """
    fields: dict[str, str] = {}
    for line in message.splitlines():
        key, sep, value = line.strip().partition(":")
        if not sep or not value.strip() or len(key) > 40 or not key.replace(" ", "").isalnum():
            continue
        name = key.replace(" ", "")
        fields.setdefault(MESSAGE_ALIASES.get(name, name), value.strip())
    return fields


def clock_offset(events: Iterator[Mapping[str, str]]) -> timedelta:
    """The offset to add to ``TimeCreated`` so it agrees with Sysmon's ``UtcTime``.

    >>> clock_offset(iter([{"TimeCreated": "2021-03-14T01:40:15.342Z",
    ...                     "UtcTime": "2021-03-14 06:40:15.338"}]))
    datetime.timedelta(seconds=18000)
    """
    votes: Counter[int] = Counter()
    for n, event in enumerate(events):
        if n >= OFFSET_SAMPLE:
            break
        created, utc = parse_time(event.get("TimeCreated", "")), parse_time(event["UtcTime"])
        if created is not None and utc is not None:
            votes[round((utc - created).total_seconds() / 900)] += 1
    if not votes:
        return timedelta(0)
    quarters, count = votes.most_common(1)[0]
    return timedelta(minutes=15 * quarters) if count * 2 > sum(votes.values()) else timedelta(0)


def _json_events(f: IO[str]) -> Iterator[tuple[int, dict[str, str] | BadLine]]:
    """Events of JSON lines, or of one JSON array (PowerShell's ConvertTo-Json)."""
    head = f.read(4096)
    f.seek(0)
    if head.lstrip().startswith("["):
        yield from _json_array(f.read())
        return
    for number, text in enumerate(f, 1):
        if not text.strip():
            continue
        try:
            event = json.loads(text)
        except ValueError as e:
            yield number, BadLine(number, f"not JSON: {e}", text[:4096])
            continue
        if not isinstance(event, dict):
            yield number, BadLine(number, "not a JSON object", text[:4096])
            continue
        yield number, normalise(event)


def _json_array(text: str) -> Iterator[tuple[int, dict[str, str] | BadLine]]:
    try:
        events = json.loads(text)
    except ValueError as e:
        yield 1, BadLine(1, f"not a JSON array: {e}", text[:4096])
        return
    for number, event in enumerate(events if isinstance(events, list) else [events], 1):
        if isinstance(event, dict):
            yield number, normalise(event)
        else:
            yield number, BadLine(number, "array item is not a JSON object", str(event)[:4096])


def json_clock_offset(open_text: Callable[[], IO[str]]) -> timedelta:
    """The clock offset of a JSON lines file (see :func:`clock_offset`)."""
    with open_text() as f:
        sample = (e for _, e in _json_events(f) if isinstance(e, dict) and e.get("UtcTime"))
        return clock_offset(sample)


def read_json_events(
    open_text: Callable[[], IO[str]], offset: timedelta = timedelta(0)
) -> Iterator[tuple[int, datetime | None, dict[str, str]] | BadLine]:
    """Events of a JSON lines file as ``(line, time + offset, fields)``, or bad lines."""
    with open_text() as f:
        for number, item in _json_events(f):
            if isinstance(item, BadLine):
                yield item
                continue
            ts = parse_time(item.get("TimeCreated", ""))
            yield number, (ts + offset if ts is not None else None), item


def read_evtx_events(
    path_or_file: Any,
) -> Iterator[tuple[int, datetime | None, dict[str, str]] | BadLine]:
    """Events of an ``.evtx`` file (read with the maintained ``evtx`` package)."""
    from evtx import PyEvtxParser

    for found in PyEvtxParser(path_or_file).records_json():
        record: dict[str, Any] = found or {}
        fields = normalise(json.loads(record["data"]))
        ts = parse_time(fields.get("TimeCreated", "")) or parse_time(
            str(record["timestamp"]).removesuffix(" UTC")
        )
        yield int(record["event_record_id"]), ts, fields
