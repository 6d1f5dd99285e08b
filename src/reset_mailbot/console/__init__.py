"""The support console in the browser (issue #17): `reset-mailbot console`.

A thin adapter like the CLI: pages read through `adapters/db/queries.py` and the shapes the
CLI prints (`service/shapes.py`), actions call the same service functions as `requests approve`
& co. (`service/actions.py`, `service/reply_actions.py`, `service/reprocess.py`), so a rule
such as four eyes is enforced once, in the service layer, for every caller.

- `app.py`: the Starlette application, its middleware and routes;
- `auth.py`: who is logged in (OpenID Connect with authlib, a trusted proxy header, or the
  loopback-only demo login) and `roles.py`: what they may do;
- `security.py`: CSRF tokens and the response headers (CSP, frame and referrer policy);
- `pages.py` (read) and `actions.py` (forms that change something: always POST, always a
  confirmation page first, always audited with the person's identity);
- `charts.py`: the small server-rendered SVG chart on the stats page;
- `server.py`: uvicorn, alone or in a thread of the daemon.

No JavaScript: every action is a plain form, so the strict Content-Security-Policy allows no
script at all.
"""
