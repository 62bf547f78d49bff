"""The administration console: ``vigile serve`` and ``vigile report --html``.

Layout: :mod:`~vigile.web.app` builds the FastAPI application; :mod:`~vigile.web.auth`
holds accounts, sessions, CSRF and throttling; :mod:`~vigile.web.api` is the JSON API
the pages use; ``views/`` has one module per page; :mod:`~vigile.web.queries`,
:mod:`~vigile.web.hosts`, :mod:`~vigile.web.roles` and :mod:`~vigile.web.charts` read
what is shown through the store contract; :mod:`~vigile.web.allowlist` applies and
audits the console's allowlist entries;
:mod:`~vigile.web.report` writes the self-contained HTML report.
"""
