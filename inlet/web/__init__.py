"""``inlet web``: server-rendered status pages for shift workers, behind Rucio logins.

Modules, each named for its job: :mod:`~inlet.web.rucio_rest` (the few Rucio REST calls the
pages need), :mod:`~inlet.web.access` (who is logged in and what they may see and do),
:mod:`~inlet.web.sources` (what each page shows, read with inlet's own query functions),
:mod:`~inlet.web.actions` (what data managers may do), :mod:`~inlet.web.live` (broker events
turned into "something changed" pushes over SSE), :mod:`~inlet.web.app` (routes, sessions,
CSRF) and :mod:`~inlet.web.server` (uvicorn and the metrics endpoint).
"""
