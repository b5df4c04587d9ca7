"""What every LB check does around its own reading of the pool: resolve the names the
pool holds, resolve the backends the layout declares, judge the one against the other
and build the check's Result from the judgement."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stackscope.lb.pool import Declared, Judgement, Pool, judge_pool
from stackscope.model import Address, ErrorKind, Result, Status, is_ip
from stackscope.probes.common import Deadline, result
from stackscope.probes.context import ResolveError


async def resolve_declared(ctx: Any, layer: str | None, timeout: float) -> list[Declared]:
    """Each declared backend as ip:port, names resolved through the layout's resolver
    (the same answer the LB got when it resolved them, if it uses that resolver)."""
    if ctx.layout is None:
        return []
    out = []
    for check, address in ctx.layout.declared_backends(layer):
        try:
            resolved = await ctx.resolve(address.host, timeout)
        except ResolveError as exc:
            out.append(Declared(None, check.name, str(address), str(exc)))
            continue
        out.append(Declared(str(Address(resolved.ip, address.port)), check.name, str(address)))
    return out


async def resolve_members(
    ctx: Any, hosts: Iterable[str | None], deadline: Deadline
) -> tuple[dict[str, str], list[ResolveError]]:
    """name -> IP for the host names a pool's members are written with (IPs and blanks
    skipped), through the layout's resolver; the errors of those that did not resolve."""
    resolved: dict[str, str] = {}
    errors: list[ResolveError] = []
    for host in hosts:
        if host and not is_ip(host) and host not in resolved:
            try:
                resolved[host] = (await ctx.resolve(host, max(0.05, deadline.remaining()))).ip
            except ResolveError as exc:
                errors.append(exc)
    return resolved, errors


async def judge_against_declared(ctx: Any, pool: Pool, backends: str | None, deadline: Deadline) -> Judgement:
    """The pool judged against the declared backends (of the layer `backends`, or of every
    backend layer)."""
    declared = await resolve_declared(ctx, backends, max(0.05, deadline.remaining()))
    return judge_pool(pool, declared)


def pool_result(
    check: Any,
    judged: Judgement,
    deadline: Deadline,
    *,
    status: Status | None = None,
    detail: str | None = None,
    kind: ErrorKind | None = None,
    facts: dict[str, Any] | None = None,
) -> Result:
    """The check's Result from the judgement (the pool fact carries its PoolEvidence);
    a check that knows more overrides the status, detail, kind or facts."""
    return result(
        check,
        judged.status if status is None else status,
        judged.detail if detail is None else detail,
        latency_ms=deadline.elapsed_ms(),
        key_fact=judged.key_fact,
        facts=judged.facts if facts is None else facts,
        kind=judged.kind if kind is None else kind,
    )
