"""ProxyLogon requests and web-shell use in IIS W3C logs.

Patterns, each matched on ``cs-uri-stem`` and on the decoded ``cs-uri-query``:

* POST to ``/owa/auth/Current/themes/resources/*`` (Volexity; CISA AA21-062A);
* ``/ecp/<1-30 chars>.(js|flt|css)`` and ``/owa/auth/<name>.js``, the static-looking
  URLs the request forgery posts to (``/ecp/y.js``, Sigma HAFNIUM web rule);
* ``/ecp/DDI/DDIService.svc/SetObject`` with ``schema=Reset…`` (Microsoft HAFNIUM
  blog; Sigma);
* the user agents listed by CISA AA21-062A and the Sigma HAFNIUM rule, on POSTs;
* web-shell parameters (``=whoami``, ``cmd /c``, ``Response.Write``…) and POSTs to
  pages under ``/aspnet_client/``;
* ProxyShell's ``/autodiscover/autodiscover.json?@…`` routed to PowerShell, MAPI or
  EWS (Sigma ProxyShell web rule), the next wave against the same servers.
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import unquote_plus

from vigile.detect import Finding
from vigile.exchange import LogBlock, LogRecord
from vigile.exchange.grouping import Grouper
from vigile.exchange.prefilter import Needle, rows_holding

SSRF_STATIC = re.compile(
    r"(?:^|/)ecp/[^/?&=]{1,30}\.(?:js|flt|css)\b|/owa/auth/[^/?&=]+\.js\b", re.IGNORECASE
)
THEMES_POST = re.compile(r"/owa/auth/Current/themes/resources/", re.IGNORECASE)
RESET_SETOBJECT = re.compile(r"/ecp/DDI/DDIService\.svc/SetObject", re.IGNORECASE)
#: ProxyShell (CVE-2021-34473): autodiscover.json?@ routed to a back end (Sigma web rule).
PROXYSHELL = re.compile(
    r"autodiscover\.json\?@.*(powershell|mapi/nspi|/ews|x-rps-cat|/owa/|autodiscover\.json)",
    re.IGNORECASE,
)
SHELL_PARAMS = re.compile(
    r"=\s*whoami|cmd(?:\.exe)?\s+/c|powershell|Response\.Write|WScript\.Shell|eval\(",
    re.IGNORECASE,
)
#: CISA AA21-062A / Volexity / Sigma HAFNIUM user agents (IIS writes spaces as '+').
HAFNIUM_AGENTS = tuple(
    a.lower()
    for a in (
        "DuckDuckBot/1.0;+(+http://duckduckgo.com/duckduckbot.html)",
        "facebookexternalhit/1.1+(+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0+(compatible;+Baiduspider/2.0;++http://www.baidu.com/search/spider.html)",
        "Mozilla/5.0+(compatible;+Bingbot/2.0;++http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0+(compatible;+Googlebot/2.1;++http://www.google.com/bot.html",
        "Mozilla/5.0+(compatible;+Konqueror/3.5;+Linux)+KHTML/3.5.5+(like+Gecko)+"
        "(Exabot-Thumbnails)",
        "Mozilla/5.0+(compatible;+Yahoo!+Slurp;+http://help.yahoo.com/help/us/ysearch/slurp)",
        "Mozilla/5.0+(compatible;+YandexBot/3.0;++http://yandex.com/bots)",
        "Mozilla/5.0+(X11;+Linux+x86_64)+AppleWebKit/537.36+(KHTML,+like+Gecko)+"
        "Chrome/51.0.2704.103+Safari/537.36",
        "antSword/v2.1",
        "Googlebot/2.1+(+http://www.googlebot.com/bot.html)",
        "ExchangeServicesClient/0.0.0.0",
        "python-requests/2.19.1",
        "python-requests/2.25.1",
    )
)
ASPNET_CLIENT_PAGE = re.compile(r"/aspnet_client/.*\.as[hmp]x$", re.IGNORECASE)
RESET_SCHEMA = re.compile(r"schema=Reset", re.IGNORECASE)
#: Text every match of a URL pattern above holds, without case (one needle per way
#: to match, all of its parts; see :mod:`vigile.exchange.prefilter`). The URL is the
#: stem, ``?`` and the decoded query: a match on the stem or on the query is one on
#: the URL, and ``/aspnet_client/`` stands for the page rule on the stem.
URL_NEEDLES: tuple[Needle, ...] = (
    ("/owa/auth/current/themes/resources/",),  # THEMES_POST
    ("ecp/",),  # SSRF_STATIC (…ecp/x.js), RESET_SETOBJECT (/ecp/DDI/…)
    (".js", "/owa/auth/"),  # SSRF_STATIC (/owa/auth/x.js); the rarer part first
    ("whoami",),  # SHELL_PARAMS: =\s*whoami
    ("/c", "cmd"),  # cmd(?:\.exe)?\s+/c (ActiveSync queries all hold Cmd=)
    ("powershell",),
    ("response.write",),
    ("wscript.shell",),
    ("eval(",),
    ("autodiscover.json?@",),  # PROXYSHELL
    ("/aspnet_client/",),  # ASPNET_CLIENT_PAGE (on the stem)
)


def request_url(stem: str, query: str) -> str:
    """The URL the patterns read: the stem, then ``?`` and the decoded query if any.

    >>> request_url("/aspnet_client/a.aspx", "c=cmd+/c+whoami")
    '/aspnet_client/a.aspx?c=cmd /c whoami'
    """
    if query and ("%" in query or "+" in query):
        query = unquote_plus(query)
    return f"{stem}?{query}" if query else stem


def needle_urls(stems: list[str], queries: list[str]) -> list[str]:
    """Each row's :func:`request_url` as the needles see it, decoding in one call.

    No needle holds ``+`` or a space, so a query without ``%`` is left as it is
    (decoding would only turn ``+`` into spaces), and the queries with ``%`` are
    decoded joined by newlines: ``%``-escapes cannot span a newline, which is ASCII and
    ends any partial UTF-8 sequence, so unless decoding made a newline (``%0A``) the
    parts are the queries decoded one by one.

    >>> needle_urls(["/a", "/b", "/c"], ["x=1+2", "", "q=%77hoami"])
    ['/a?x=1+2', '/b', '/c?q=whoami']
    """
    urls = [
        f"{stem}?{query}" if query else stem for stem, query in zip(stems, queries, strict=True)
    ]
    escaped = [i for i, query in enumerate(queries) if "%" in query]
    if not escaped:
        return urls
    joined = "\n".join(queries[i] for i in escaped)
    decoded = unquote_plus(joined).split("\n")
    if joined.count("\n") != len(escaped) - 1 or len(decoded) != len(escaped):
        decoded = [unquote_plus(queries[i]) for i in escaped]
    for i, query in zip(escaped, decoded, strict=True):
        urls[i] = f"{stems[i]}?{query}"
    return urls


def agent_listed(agent: str) -> bool:
    """Whether a user agent starts with one HAFNIUM used (IIS writes spaces as ``+``)."""
    return agent.lower().replace(" ", "+").startswith(HAFNIUM_AGENTS)


#: Distinct user agents remembered before the memo starts afresh (memory stays flat).
AGENTS_KEPT = 10_000
DESCRIBE = {
    "themes-post": "POSTs to /owa/auth/Current/themes/resources/, where ProxyLogon shells hide",
    "ssrf-static": "requests for a root-level /ecp/*.js|flt|css or /owa/auth/*.js, the URLs "
    "the CVE-2021-26855 request forgery posts to",
    "reset-setobject": "DDIService.svc/SetObject with schema=Reset…, the CVE-2021-27065 reset",
    "hafnium-agent-post": "POSTs with a user agent listed by CISA AA21-062A for HAFNIUM",
    "hafnium-agent": "GETs with a user agent listed by CISA AA21-062A (crawlers use some too)",
    "shell-params": "requests whose query holds web-shell commands (whoami, cmd /c, …)",
    "aspnet-client-post": "POSTs to a page under /aspnet_client/, where no product page lives",
    "proxyshell": "autodiscover.json?@… requests routed to a back end (ProxyShell, "
    "CVE-2021-34473, the successor of ProxyLogon)",
}


def match_request(method: str, stem: str, query: str, agent: str) -> list[tuple[str, float]]:
    """``(pattern, score)`` for every pattern one request matches.

    >>> match_request("POST", "/ecp/y.js", "", "python-requests/2.25.1")
    [('ssrf-static', 0.8), ('hafnium-agent-post', 0.75)]
    >>> match_request("POST", "/owa/auth.owa", "", "Mozilla/5.0+(Windows+NT+10.0)")
    []
    """
    url = request_url(stem, query)
    if query and ("%" in query or "+" in query):
        query = unquote_plus(query)
    post = method.upper() == "POST"
    hits = []
    if post and THEMES_POST.search(url):
        hits.append(("themes-post", 0.8))
    if SSRF_STATIC.search(url):
        hits.append(("ssrf-static", 0.8 if post else 0.55))
    if RESET_SETOBJECT.search(url) and RESET_SCHEMA.search(url):
        hits.append(("reset-setobject", 0.85))
    if agent_listed(agent):
        hits.append(("hafnium-agent-post", 0.75) if post else ("hafnium-agent", 0.35))
    if query and SHELL_PARAMS.search(query):
        hits.append(("shell-params", 0.85))
    if post and ASPNET_CLIENT_PAGE.search(stem):
        hits.append(("aspnet-client-post", 0.85))
    if PROXYSHELL.search(url):
        hits.append(("proxyshell", 0.85))
    return hits


class IisProxyLogonCheck:
    """IIS requests matching published ProxyLogon and web-shell patterns."""

    name: ClassVar[str] = "exchange-iis-requests"
    kinds: ClassVar[tuple[str, ...]] = ("iis",)
    summary: ClassVar[str] = "ProxyLogon URLs, HAFNIUM user agents and web-shell use in IIS logs"
    source: ClassVar[str] = "CISA AA21-062A; Volexity; Sigma HAFNIUM web rules; Microsoft blog"

    def __init__(self) -> None:
        self.groups = Grouper(self.name)
        #: agent_listed per agent seen: a server sees a few hundred agents, each often.
        self.agents: dict[str, bool] = {}

    def feed(self, record: LogRecord) -> None:
        method, stem = record.get("cs-method"), record.get("cs-uri-stem")
        query, agent = record.get("cs-uri-query"), record.get("cs(User-Agent)")
        for pattern, score in match_request(method, stem, query, agent):
            self.groups.add(
                record.get("c-ip"),
                pattern,
                score,
                record,
                server=record.get("s-ip") or None,
                request=f"{method} {stem}{'?' + query if query else ''}"[:500],
                status=record.get("sc-status"),
                user_agent=agent,
            )

    def feed_block(self, block: LogBlock) -> None:
        """:meth:`feed` for the rows a pattern may match: those whose URL holds a
        needle of :data:`URL_NEEDLES` or whose agent is listed; the others match none."""
        rows = block.rows
        urls = needle_urls(rows.column("cs-uri-stem"), rows.column("cs-uri-query"))
        found = set(rows_holding(urls, URL_NEEDLES))
        agents = rows.column("cs(User-Agent)")
        if len(self.agents) > AGENTS_KEPT:
            self.agents.clear()
        distinct = set(agents)  # a few per block: each tested once, then remembered
        for agent in distinct.difference(self.agents):
            self.agents[agent] = agent_listed(agent)
        listed = {agent for agent in distinct if self.agents[agent]}
        if listed:
            found.update(i for i, agent in enumerate(agents) if agent in listed)
        for i in sorted(found):
            self.feed(block.record(i))

    def finish(self) -> list[Finding]:
        return self.groups.findings(DESCRIBE)
