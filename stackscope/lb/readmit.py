"""How long each load balancer may take to send a member traffic again once it answers
(PoolServer.readmit_s, then model.PoolMember.readmit_s).

Each LB keeps a recovered member out until its own clock says so: HAProxy until `rise`
checks passed, Varnish until `.threshold` probes of the window are good, Apache until
`retry` ran out or mod_proxy_hcheck's passes, Caddy until `fail_duration` forgot the
failures or the next active check, nginx until `fail_timeout` ran out. Inside that window
an LB still holding out a member that answers directly is the member recovering, not the
LB at fault, so the diagnosis needs the window. Every number here is a worst case, in
seconds, from the LB's settings (the formulas and defaults were verified on haproxy 2.6,
Varnish 7.1, Apache 2.4.71, Caddy 2.6 and nginx 1.22; see README "Load balancer checks").

Each LB also writes its times its own way (HAProxy defaults to ms, nginx and Apache to
seconds, VCL needs a unit); the parsers below return None for a time the LB would not
take, so a window is never guessed from a typo.
"""

from __future__ import annotations

import re

HAPROXY_INTER_S = 2.0  # `inter` when unset; fastinter and downinter fall back to inter
HAPROXY_RISE = 2
VARNISH_INTERVAL_S = 5.0
VARNISH_TIMEOUT_S = 2.0
VARNISH_THRESHOLD = 3
APACHE_RETRY_S = 60.0
APACHE_HCINTERVAL_S = 30.0
APACHE_HCPASSES = 1
APACHE_WATCHDOG_S = 0.1  # mod_proxy_hcheck polls for due checks every 100 ms
CADDY_HEALTH_INTERVAL_S = 30.0
CADDY_HEALTH_TIMEOUT_S = 5.0
NGINX_FAIL_TIMEOUT_S = 10.0
NGINX_CLOCK_S = 1.0  # nginx compares fail_timeout on a whole-second clock

_NUMBER_UNIT = re.compile(r"(\d+(?:\.\d+)?)([a-zA-Z]*)")


def _time(text: str, units: dict[str, float], default: str | None) -> float | None:
    """One number with an optional unit (`default` when it has none; None: a unit is
    required), in seconds; None for anything else."""
    match = _NUMBER_UNIT.fullmatch(text.strip())
    if match is None:
        return None
    unit = match.group(2) or default
    if unit not in units:
        return None
    return float(match.group(1)) * units[unit]


def haproxy_time(text: str) -> float | None:
    """HAProxy's <time>: milliseconds unless a unit (us, ms, s, m, h, d) says otherwise."""
    return _time(text, {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}, "ms")


def vcl_duration(text: str) -> float | None:
    """A VCL duration (`5s`, `500ms`, `1.5m`): the unit is required."""
    return _time(text, {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}, None)


_NGINX_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def nginx_time(text: str) -> float | None:
    """An nginx time (`10s`, `1m30s`, `30`: seconds when bare)."""
    text = text.strip()
    if _NUMBER_UNIT.fullmatch(text):
        return _time(text, _NGINX_UNITS, "s")
    parts = re.fullmatch(r"(?:\d+(?:ms|s|m|h|d|w))+", text)
    if parts is None:
        return None
    return sum(float(n) * _NGINX_UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w)", text))


def apache_time(text: str) -> float | None:
    """Apache's hcinterval/retry: seconds unless a unit (ms, s, mi, hr) says otherwise."""
    return _time(text, {"ms": 1e-3, "s": 1.0, "mi": 60.0, "hr": 3600.0}, "s")


def haproxy(
    rise: int = HAPROXY_RISE,
    inter: float = HAPROXY_INTER_S,
    fastinter: float | None = None,
    downinter: float | None = None,
    timeout_check: float | None = None,
    timeout_connect: float | None = None,
    spread_checks: float = 0.0,
) -> float:
    """HAProxy: the next check after a fully DOWN server comes back is due `downinter`
    after the last one ended, then rise−1 more passes `fastinter` apart (each falls back to
    `inter`); plus one check timeout, for a check that was hanging when the server came
    back (it also bounds the passing checks' own time), and the `spread-checks` jitter
    (up to that percentage longer, on every interval)."""
    down = inter if downinter is None else downinter
    fast = inter if fastinter is None else fastinter
    intervals = (down + max(rise - 1, 0) * fast) * (1 + max(spread_checks, 0.0) / 100)
    if timeout_check is None:
        check = inter  # without `timeout check`, inter bounds the whole check
    else:
        check = min(timeout_connect, inter) if timeout_connect is not None else inter
        check += timeout_check
    return round(intervals + check, 3)


def varnish(
    interval: float = VARNISH_INTERVAL_S, timeout: float = VARNISH_TIMEOUT_S, threshold: int = VARNISH_THRESHOLD
) -> float:
    """Varnish: after a long outage the window is all bad, so `.threshold` good probes are
    needed, `.interval` apart (the next one is due an interval after the previous one
    ends), plus one `.timeout` for a probe that was hanging when the backend came back."""
    return round(timeout + threshold * interval, 3)


def apache_hcheck(interval: float = APACHE_HCINTERVAL_S, passes: int = APACHE_HCPASSES) -> float:
    """Apache with mod_proxy_hcheck: `hcpasses` checks `hcinterval` apart, polled every
    100 ms (since httpd 2.4.55 those passes also clear a plain `Err`)."""
    return round(max(passes, 1) * interval + APACHE_WATCHDOG_S, 3)


def apache_retry(retry: float = APACHE_RETRY_S) -> float:
    """Apache without a health check: a worker in `Err` gets no request until `retry` has
    passed (the first request after that is the probe)."""
    return round(retry, 3)


def caddy(active_interval: float | None, active_timeout: float | None, passive_fail_duration: float | None) -> float:
    """Caddy 2.6: an active check runs on a fixed ticker (`health_interval`) and one pass
    brings the upstream back, so up to one interval plus the check's timeout; a passive
    failure is forgotten `fail_duration` after it was counted. A member held out by both
    waits for the later; with neither, Caddy never holds a member out (0)."""
    windows = [0.0]
    if active_interval is not None:
        windows.append(active_interval + (CADDY_HEALTH_TIMEOUT_S if active_timeout is None else active_timeout))
    if passive_fail_duration:
        windows.append(passive_fail_duration)
    return round(max(windows), 3)


def nginx(fail_timeout: float = NGINX_FAIL_TIMEOUT_S, max_fails: int = 1) -> float:
    """nginx: after `max_fails` failures a peer is skipped for `fail_timeout` on a
    whole-second clock; then the next request given to it is the probe (without traffic
    it never comes back, which no setting can bound). `max_fails=0` never skips a peer."""
    if max_fails == 0:
        return 0.0
    return round(fail_timeout + NGINX_CLOCK_S, 3)
