"""The backends a layout declares, resolved to the addresses an LB pool would hold."""

from __future__ import annotations

from typing import Any

from stackscope.lb.pool import Declared
from stackscope.model import Address
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
