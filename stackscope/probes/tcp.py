"""`tcp`: can a connection be opened? Refused, timed out and unreachable are told apart."""

from __future__ import annotations

from dataclasses import dataclass

from stackscope.kinds import AddressKind, CheckSpec
from stackscope.model import Result, Status
from stackscope.probes.common import Deadline, ProbeFailure, close_quietly, open_connection, resolve_host, result


@dataclass(frozen=True)
class TcpOptions:
    pass


async def probe(check, ctx) -> Result:
    deadline = Deadline(check.timeout)
    address = check.address
    ip, facts = await resolve_host(ctx, address.host, deadline)
    where = str(address) if ip == address.host else f"{address} ({ip})"
    try:
        _, writer = await open_connection(ip, address.port, deadline, where=where)
    except ProbeFailure as failure:
        failure.facts.update(facts)
        raise
    latency = deadline.elapsed_ms()
    await close_quietly(writer)
    facts.update({"address": str(address), "ip": ip, "port": address.port})
    return result(
        check,
        Status.OK,
        f"{address} accepts connections ({latency:.1f} ms)",
        latency_ms=latency,
        key_fact="open",
        facts=facts,
    )


SPEC = CheckSpec(
    key="tcp",
    doc="Open a TCP connection to host:port.",
    target=AddressKind(),
    options=TcpOptions,
    probe=probe,
    example="- tcp: 127.0.0.1:5432",
)
