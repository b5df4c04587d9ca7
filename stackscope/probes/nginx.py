"""`nginx`: the pool of one upstream, read from the config nginx runs, plus stub_status.

The config (or a saved `nginx -T`) is read on every probe, so a change deployed a minute
ago shows up in the next round. Host names in `server` lines are resolved through the
layout's resolver, as nginx resolved them when it loaded the config.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from stackscope.kinds import CheckSpec, FilePath, LayerRef, Text, UrlKind, did_you_mean, option
from stackscope.lb import nginx_conf
from stackscope.lb.declared import judge_against_declared, pool_result, resolve_members
from stackscope.lb.pool import LAYOUT_RESOLVER_FAILED
from stackscope.model import ErrorKind, Result, Status
from stackscope.probes.common import Deadline, ProbeFailure, reach
from stackscope.probes.httpclient import fetch

_STUB = re.compile(
    r"Active connections:\s*(\d+)\s*\nserver accepts handled requests\s*\n\s*(\d+)\s+(\d+)\s+(\d+)"
    r"\s*\nReading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)"
)


@dataclass(frozen=True)
class NginxOptions:
    upstream: str = option(Text(), None, "The upstream block (pool) to inspect.", required=True)
    status_url: Any = option(UrlKind(), None, "stub_status URL, for live connection numbers.")
    backends: str | None = option(
        LayerRef(role="backend"), None, "Layer whose checks are the declared backends (default: every backend layer)."
    )


async def _load(path: str) -> nginx_conf.Config:
    try:
        return await asyncio.to_thread(nginx_conf.load, path)
    except nginx_conf.ConfigError as exc:
        if exc.line == 0:  # the file itself could not be read: we cannot tell what nginx does
            raise ProbeFailure(
                ErrorKind.CONFIG, f"cannot read the nginx config: {exc}", key_fact="unreadable", status=Status.UNKNOWN
            ) from None
        raise ProbeFailure(
            ErrorKind.CONFIG, f"nginx config error at {exc}: nginx would refuse to load it", key_fact="config error"
        ) from None


async def _stub_status(check, ctx, deadline: Deadline) -> tuple[dict[str, Any] | None, ProbeFailure | None]:
    url = check.options.status_url
    try:
        endpoint = await reach(ctx, url, deadline)
        response = await fetch(
            endpoint.ip,
            url.port,
            deadline=deadline,
            target=url.path,
            host_header=url.host_header,
            ssl_context=endpoint.ssl_context,
            sni=endpoint.sni,
            body_cap=4096,
            where=f"stub_status {url.host}:{url.port}",
        )
    except ProbeFailure as failure:
        return None, failure
    match = _STUB.search(response.body.decode("latin-1"))
    if response.status != 200 or not match:
        return None, ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{url.raw} answered {response.status_text} without "
            "stub_status numbers (is `stub_status;` in that location?)",
            key_fact="no stub",
        )
    active, accepts, handled, requests, reading, writing, waiting = (int(g) for g in match.groups())
    return {
        "active": active,
        "accepts": accepts,
        "handled": handled,
        "requests": requests,
        "reading": reading,
        "writing": writing,
        "waiting": waiting,
    }, None


async def probe(check, ctx) -> Result:
    options: NginxOptions = check.options
    deadline = Deadline(check.timeout)
    config = await _load(check.address)
    try:
        found = nginx_conf.upstreams(config)
    except nginx_conf.ConfigError as exc:  # a bad server line or upstream directive
        raise ProbeFailure(ErrorKind.CONFIG, f"nginx config error at {exc}", key_fact="config error") from None
    upstream = found.get(options.upstream)
    if upstream is None:
        names = sorted(found)
        hint = did_you_mean(options.upstream, names) or (
            f"upstreams: {', '.join(names)}" if names else "the config has no upstream blocks"
        )
        raise ProbeFailure(
            ErrorKind.CONFIG, f"no upstream '{options.upstream}' in {config.main} — {hint}", key_fact="no upstream"
        )
    resolved, errors = await resolve_members(ctx, (server.host for server in upstream.servers), deadline)
    notes = [f"{exc} (nginx would refuse to start: host not found in upstream)" for exc in errors]
    pool = nginx_conf.pool_of(upstream, resolved, config, LAYOUT_RESOLVER_FAILED)
    judged = await judge_against_declared(ctx, pool, options.backends, deadline)
    status, detail, kind = judged.status, judged.detail, judged.kind
    facts = dict(judged.facts)
    facts["config_files"] = config.files
    if notes:
        facts["pool"]["notes"] = notes
        if status is Status.OK:
            status, kind, detail = Status.WARN, ErrorKind.CONFIG, f"{detail}; {notes[0]}"
    if options.status_url is not None:
        stub, failure = await _stub_status(check, ctx, deadline)
        if failure is not None:  # nginx itself is not answering: that outranks what the file says
            raise ProbeFailure(
                failure.kind,
                f"nginx is not answering: {failure.detail} (config: {detail})",
                key_fact=failure.key_fact,
                facts=facts,
            )
        assert stub is not None  # _stub_status returns the page or a failure
        facts["stub_status"] = stub
        if stub["handled"] < stub["accepts"] and status is Status.OK:
            dropped = stub["accepts"] - stub["handled"]
            status, kind = Status.WARN, ErrorKind.SATURATED
            detail += f"; nginx dropped {dropped} connections (worker_connections or a resource limit)"
        # the connection numbers stay in the facts: the summary is about the pool
    return pool_result(check, judged, deadline, status=status, detail=detail, kind=kind, facts=facts)


SPEC = CheckSpec(
    key="nginx",
    doc="Read an nginx upstream's pool from the config (or `nginx -T` output) and compare it with the "
    "declared backends.",
    target=FilePath(must_exist=False),
    options=NginxOptions,
    probe=probe,
    example="- nginx: /etc/nginx/nginx.conf\n  upstream: auth_servers",
)
