"""`apache`: read one mod_proxy_balancer pool from Apache httpd's balancer-manager page.

The page is read with one plain GET of the URL the layout names, which may carry no query
string: the manager's links carry a nonce and `b=`/`w=` parameters that change the
balancer, and a read must never come near them (no POST, no parameters, no link
followed). The worker table gives each member's URL, route and status flags; worker host
names are resolved through the layout's resolver, as httpd resolved them, and the pool is
judged against the declared backends by the same rules as every other LB check.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stackscope.kinds import (
    CheckSpec,
    EnvName,
    Invalid,
    Kind,
    LayerRef,
    ParseContext,
    Text,
    UrlKind,
    did_you_mean,
    option,
)
from stackscope.lb import apache_manager
from stackscope.lb.apache_conf import split_worker_url
from stackscope.lb.declared import judge_against_declared, pool_result, resolve_members
from stackscope.lb.pool import LAYOUT_RESOLVER_FAILED
from stackscope.model import ErrorKind, Result, Status, Url
from stackscope.probes.common import Deadline, ProbeFailure, basic_auth_from_env, reach
from stackscope.probes.httpclient import fetch_pool_page

PAGE_CAP = 4 * 1024 * 1024  # about 3000 workers; a bigger page is refused, not cut and misread
PARSE_IN_THREAD = 256 * 1024  # parse bigger pages off the event loop
BALANCER_NAME = re.compile(r"[A-Za-z0-9_.-]+")
URL_PATH = re.compile(r"/[A-Za-z0-9_.~/-]*")


class ManagerUrlKind(Kind):
    """http(s)://host:port/path of the balancer-manager: a plain path, no query string."""

    hint = "http://host:port/balancer-manager"

    def parse(self, value: Any, ctx: ParseContext) -> Url:
        url = UrlKind().parse(value, ctx)
        if "?" in url.path or "#" in url.raw:
            raise Invalid(
                f"'{url.raw}' has a query string: balancer-manager parameters change the balancer",
                f"write the page's plain path, like http://{url.host_header}/balancer-manager",
            )
        if not URL_PATH.fullmatch(url.path):
            raise Invalid(
                f"the path '{url.path}' in '{url.raw}' has characters a balancer-manager path does not need",
                "use letters, digits and - _ . ~ / only, like /balancer-manager",
            )
        return url

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^https?://[^?#]*$"}


class BalancerName(Text):
    hint = "a balancer name (letters, digits, _ . -)"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        text = super().parse(value, ctx).strip()
        if text.lower().startswith("balancer://"):
            raise Invalid(f"'{text}' is a balancer URL", f"write just the name: {text[len('balancer://') :]}")
        if not BALANCER_NAME.fullmatch(text):
            raise Invalid(
                f"'{text}' is not a balancer name", "use letters, digits, _ . and - only, as in balancer://NAME"
            )
        return text

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"}


@dataclass(frozen=True)
class ApacheOptions:
    balancer: str = option(BalancerName(), None, "The balancer (balancer://NAME) to inspect.", required=True)
    auth_env: str | None = option(
        EnvName(), None, "Environment variable holding user:password for the balancer-manager page."
    )
    backends: str | None = option(
        LayerRef(role="backend"), None, "Layer whose checks are the declared backends (default: every backend layer)."
    )


def _unknown(kind: ErrorKind, detail: str, key_fact: str) -> ProbeFailure:
    return ProbeFailure(kind, detail, key_fact=key_fact, status=Status.UNKNOWN)


async def read_page(check, ctx, deadline: Deadline) -> str:
    url: Url = check.address
    endpoint = await reach(ctx, url, deadline)
    headers = []
    if check.options.auth_env:
        headers.append(basic_auth_from_env(ctx, check.options.auth_env, "the balancer-manager's login"))
    response = await fetch_pool_page(
        endpoint,
        url,
        deadline=deadline,
        headers=headers,
        body_cap=PAGE_CAP,
        where=f"balancer-manager {url.host}:{url.port}",
    )
    if response.status in (401, 403):
        hint = (
            f"check the credentials in {check.options.auth_env}"
            if check.options.auth_env and response.status == 401
            else "set auth_env to a variable holding user:password"
            if response.status == 401
            else "allow this host in the manager's <Location> (Require ip …)"
        )
        raise _unknown(
            ErrorKind.AUTH,
            f"the balancer-manager page refused the read ({response.status_text}): {hint}",
            str(response.status),
        )
    if response.status != 200:
        raise _unknown(
            ErrorKind.HTTP_STATUS,
            f"the balancer-manager page answered {response.status_text}, not the manager page",
            str(response.status),
        )
    if response.truncated:
        raise _unknown(
            ErrorKind.PROTOCOL,
            f"cannot read the pool: the read cap cut the balancer-manager page at {PAGE_CAP} bytes "
            f"(it is larger than {PAGE_CAP // 1024 // 1024} MiB)",
            "too big",
        )
    return response.body.decode("utf-8", "replace")


async def _parse(text: str) -> list[apache_manager.Balancer]:
    if len(text) > PARSE_IN_THREAD:
        return await asyncio.to_thread(apache_manager.parse_page, text)
    return apache_manager.parse_page(text)


async def probe(check, ctx) -> Result:
    options: ApacheOptions = check.options
    deadline = Deadline(check.timeout)
    url: Url = check.address
    text = await read_page(check, ctx, deadline)
    try:
        found = await _parse(text)
    except apache_manager.ManagerError as exc:
        raise _unknown(ErrorKind.PROTOCOL, f"cannot read the pool from {url.raw}: {exc}", "unreadable") from None
    wanted = options.balancer.lower()
    balancer = next((b for b in found if b.name.lower() == wanted), None)
    if balancer is None:
        names = [b.name for b in found]
        hint = did_you_mean(options.balancer, names) or f"balancers: {', '.join(names)}"
        raise _unknown(ErrorKind.CONFIG, f"{url.raw} shows no balancer://{options.balancer} — {hint}", "no balancer")
    if balancer.problem:  # half a worker table is a smaller pool: a false verdict, so none
        raise _unknown(
            ErrorKind.PROTOCOL,
            f"cannot read the pool from {url.raw}: balancer://{balancer.name}: {balancer.problem}",
            "unreadable",
        )
    resolved, _ = await resolve_members(ctx, _worker_hosts(balancer), deadline)
    pool = apache_manager.pool_of(balancer, f"balancer-manager {url.raw}", resolved, LAYOUT_RESOLVER_FAILED)
    return pool_result(check, await judge_against_declared(ctx, pool, options.backends, deadline), deadline)


def _worker_hosts(balancer: apache_manager.Balancer) -> Iterator[str | None]:
    for worker in balancer.workers:
        try:
            host, _, _ = split_worker_url(worker.url)
        except ValueError:
            continue
        yield host


SPEC = CheckSpec(
    key="apache",
    doc="Read an Apache httpd mod_proxy_balancer pool from its balancer-manager page (a plain GET, never a "
    "change) and compare it with the declared backends.",
    target=ManagerUrlKind(),
    options=ApacheOptions,
    probe=probe,
    example="- apache: http://127.0.0.1:8080/balancer-manager\n  balancer: auth_servers",
)
