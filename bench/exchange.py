"""Exchange inspection throughput: vigile's checks against a plain grep over the same logs.

Writes a synthetic IIS W3C log and an HttpProxy log (normal OWA, autodiscover and
ActiveSync traffic with a few ProxyLogon requests mixed in) to a temporary folder,
then times ``inspect_paths`` on them and, side by side, the same checks fed one record
per line (their ``feed`` only, as before blocks) and GNU grep -E with the IIS URL
patterns (a lower bound: grep parses nothing and scores nothing), each in its own
process. Prints lines/s, the ratios and each side's peak memory.

Run from the repository root: ``.venv/bin/python -m bench.exchange [--lines N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import Contender, add_repeat_option, machine, measure_turns
from vigile.exchange import registered_checks
from vigile.exchange.inspect import inspect_paths

IIS_HEADER = (
    "#Software: Microsoft Internet Information Services 10.0\n#Fields: date time s-ip "
    "cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) "
    "sc-status sc-substatus sc-win32-status sc-bytes time-taken\n"
)
PROXY_HEADER = (
    "#Log-type: HttpProxy Logs\n#Fields: DateTime,RequestId,ClientIpAddress,UrlHost,UrlStem,"
    "AuthenticatedUser,AnchorMailbox,UserAgent,ServerHostName,HttpStatus,ResponseBytes\n"
)
NORMAL = [
    ("POST", "/owa/auth.owa", "-"),
    ("GET", "/owa/auth/logon.aspx", "url=https%3a%2f%2fmail%2fowa"),
    ("POST", "/Microsoft-Server-ActiveSync/default.eas", "Cmd=Sync&User=alice"),
    ("POST", "/Autodiscover/Autodiscover.xml", "-"),
    ("POST", "/mapi/emsmdb/", "mailboxId=x@contoso.com"),
]
ATTACK = [("POST", "/ecp/y.js", "-"), ("POST", "/aspnet_client/discover.aspx", "cmd=whoami")]
GREP_PATTERN = r"/ecp/[^/ ]{1,30}\.(js|flt|css) |/owa/auth/Current/themes/resources/|=whoami"


def write_logs(root: Path, lines: int, rng: random.Random) -> None:
    iis = root / "W3SVC1" / "u_ex210303.log"
    proxy = root / "Logging" / "HttpProxy" / "Owa" / "HttpProxy_2021030300-1.LOG"
    iis.parent.mkdir(parents=True)
    proxy.parent.mkdir(parents=True)
    with iis.open("w") as f, proxy.open("w") as g:
        f.write(IIS_HEADER)
        g.write(PROXY_HEADER)
        for n in range(lines):
            method, stem, query = rng.choice(ATTACK if n % 5000 == 0 else NORMAL)
            ip = f"10.0.{rng.randrange(4)}.{rng.randrange(1, 250)}"
            sec = n // 20  # a busy server logs about 20 requests a second
            ts = f"2021-03-03 {sec // 3600 % 24:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
            f.write(
                f"{ts} 10.0.0.25 {method} {stem} {query} 443 - {ip} Mozilla/5.0+(Windows) - "
                f"200 0 0 {rng.randrange(500, 50000)} 15\n"
            )
            anchor = "ServerInfo~a]@mx01:444/mapi/emsmdb?#" if n % 5000 == 0 else "SMTP:a@b.c"
            g.write(
                f"{ts.replace(' ', 'T')}.000Z,r{n},{ip},mail,{stem},,{anchor},Outlook,MX01,200,"
                f"{rng.randrange(500, 50000)}\n"
            )


def run_vigile(root: Path) -> int:
    return len(inspect_paths([root]).findings)


def run_vigile_per_row(root: Path) -> int:
    checks = [type(c.__name__, (c,), {"feed_block": None}) for c in registered_checks()]
    return len(inspect_paths([root], checks).findings)


def run_grep(root: Path) -> int:
    files = [str(p) for p in root.rglob("*") if p.is_file()]
    done = subprocess.run(["grep", "-cE", GREP_PATTERN, *files], capture_output=True, text=True)
    return sum(int(line.rsplit(":", 1)[1]) for line in done.stdout.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000, help="lines per log file")
    add_repeat_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_logs(root, args.lines, random.Random(7))
        total = 2 * args.lines
        contenders = [
            Contender("vigile inspect exchange", run_vigile, (root,)),
            Contender("vigile, one record per line", run_vigile_per_row, (root,)),
        ]
        if shutil.which("grep"):
            contenders.append(Contender("grep -E", run_grep, (root,)))
        ours, per_row, *rest = measure_turns(contenders, args.repeat)
        theirs = rest[0] if rest else None
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"lines: {total:,} in 2 files; turns, the fastest of {args.repeat} runs of each")
    for m in (ours, per_row, theirs):
        if m is not None:
            print(
                f"{m.name}: {m.seconds:.2f} s = {total / m.seconds:,.0f} lines/s, "
                f"CPU {m.cpu_seconds:.2f} s, "
                f"peak RSS {m.peak_rss_mb:,.0f} MB, result {m.result}"
            )
    print(f"ratio one record per line/blocks time: {per_row.seconds / ours.seconds:.1f}x")
    if theirs is not None:
        print(f"ratio vigile/grep time: {ours.seconds / theirs.seconds:.1f}x")


if __name__ == "__main__":
    main()
