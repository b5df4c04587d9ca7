"""`dns`: ask one DNS server for one record and judge the answer.

The probe queries the server directly (not through a stub resolver) so that NXDOMAIN,
SERVFAIL and REFUSED are seen as the server's own answer, with no retries to other
servers blurring which one is broken.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from stackscope.kinds import AddressKind, CheckSpec, Choice, HostnameKind, TextList, option
from stackscope.model import Address, DnsAnswers, ErrorKind, Result, Status
from stackscope.probes.common import Deadline, ProbeFailure, describe_os_error, result
from stackscope.probes.context import WIRE_ERRORS, NoReply, dns_wire_problem, udp_query
from stackscope.safetext import terminal_safe

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "PTR", "CAA")


@dataclass(frozen=True)
class DnsOptions:
    record: str = option(Choice(*RECORD_TYPES, case_insensitive=True), "A", "Record type to ask for.")
    server: Address | None = option(
        AddressKind(default_port=53), None, "DNS server to ask (default: the layout's resolver, else the system's)."
    )
    expect: tuple[str, ...] = option(TextList(), (), "Every listed value must be in the answer.")
    transport: str = option(Choice("udp", "tcp"), "udp", "udp (falls back to tcp when truncated) or tcp.")


def _server(check, ctx) -> Address:
    if check.options.server is not None:
        return check.options.server
    if ctx.resolver is not None:
        return ctx.resolver
    import dns.resolver

    try:
        nameservers = dns.resolver.Resolver(configure=True).nameservers
    except dns.exception.DNSException:
        nameservers = []
    if not nameservers:
        raise ProbeFailure(
            ErrorKind.RESOLVE,
            "no DNS server to ask: set server: on the check or resolver: on the layout",
            status=Status.UNKNOWN,
            key_fact="no server",
        )
    return Address(str(nameservers[0]), 53)


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ALL_QUOTED = re.compile(r'^\s*(?:"(?:[^"\\]|\\.)*"\s*)+$')


def _txt(rdata) -> str:
    """A TXT record as the text it carries: its strings joined (a long SPF or DKIM value is
    split in 255-byte strings), without the zone-file quotes, control characters replaced."""
    return terminal_safe(b"".join(rdata.strings).decode("utf-8", "backslashreplace"))


def _normalise(value: str, record: str) -> str:
    if record in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    if record == "TXT":
        # case matters in TXT (DKIM keys); an expectation written in zone-file form,
        # '"v=DKIM1; " "p=…"', means the strings joined
        if _ALL_QUOTED.match(value):
            return "".join(re.sub(r"\\(.)", r"\1", part) for part in _QUOTED.findall(value))
        return value
    return value.lower().rstrip(".")


async def probe(check, ctx) -> Result:
    options: DnsOptions = check.options
    deadline = Deadline(check.timeout)
    server = _server(check, ctx)
    name, record = check.address, options.record
    rdtype = dns.rdatatype.from_text(record)
    query = dns.message.make_query(name, rdtype)
    transport = options.transport
    facts: dict = {"server": str(server), "name": name, "record": record}
    try:
        if options.transport == "tcp":
            response = await dns.asyncquery.tcp(query, server.host, port=server.port, timeout=deadline.remaining())
        else:
            response = await udp_query(query, server, deadline.remaining())
            if response.flags & dns.flags.TC:
                transport = "tcp (truncated over udp)"
                response = await dns.asyncquery.tcp(
                    query, server.host, port=server.port, timeout=max(0.05, deadline.remaining())
                )
    except (dns.exception.Timeout, NoReply) as exc:
        ignored = getattr(exc, "ignored", 0)
        note = ""
        if ignored:
            facts["ignored_replies"] = ignored
            note = (
                f" ({ignored} repl{'y' if ignored == 1 else 'ies'} with the wrong query ID or question ignored: "
                "spoofed, or late answers to another query)"
            )
        raise ProbeFailure(
            ErrorKind.TIMEOUT, f"no answer from {server} in {deadline.text}{note}", key_fact="no answer", facts=facts
        ) from None
    except (dns.exception.DNSException, *WIRE_ERRORS) as exc:  # EOFError: a TCP stream ended early
        facts["transport"] = transport
        sentence, key_fact = dns_wire_problem(exc, server, transport != "udp")
        raise ProbeFailure(ErrorKind.PROTOCOL, sentence, key_fact=key_fact, facts=facts) from None
    except OSError as exc:
        kind, detail, key_fact = describe_os_error(exc, str(server))
        raise ProbeFailure(kind, detail, key_fact=key_fact, facts=facts) from None
    latency = deadline.elapsed_ms()
    rcode = dns.rcode.to_text(response.rcode())
    facts.update({"rcode": rcode, "transport": transport, "authoritative": bool(response.flags & dns.flags.AA)})

    answers: list[str] = []
    ttl = None
    chain: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and rdtype != dns.rdatatype.CNAME:
            chain.extend(
                f"{rrset.name.to_text(omit_final_dot=True)} → {r.target.to_text(omit_final_dot=True)}" for r in rrset
            )
            continue
        if rrset.rdtype != rdtype:
            continue
        ttl = rrset.ttl if ttl is None else min(ttl, rrset.ttl)
        for rdata in rrset:
            if record in ("A", "AAAA"):
                answers.append(rdata.address)
            else:
                answers.append(_txt(rdata) if record == "TXT" else rdata.to_text())
    facts.update({"answers": answers, "ttl": ttl})
    if chain:
        facts["cname_chain"] = chain

    if rcode != "NOERROR":
        meaning = {
            "NXDOMAIN": "the name does not exist",
            "SERVFAIL": "the server failed to resolve it",
            "REFUSED": "the server refuses to answer for this name",
        }.get(rcode, "an error")
        return result(
            check,
            Status.CRIT,
            f"{server} answered {rcode} for {name} {record}: {meaning}",
            latency_ms=latency,
            key_fact=rcode,
            facts=facts,
            kind=ErrorKind.DNS_RCODE,
        )
    if not answers:
        return result(
            check,
            Status.CRIT,
            f"{server} has no {record} record for {name} (NOERROR, empty answer)",
            latency_ms=latency,
            key_fact="no record",
            facts=facts,
            kind=ErrorKind.DNS_ANSWER,
        )
    shown = ", ".join(answers[:3]) + (f" (+{len(answers) - 3})" if len(answers) > 3 else "")
    if options.expect:
        have = {_normalise(a, record) for a in answers}
        missing = [value for value in options.expect if _normalise(value, record) not in have]
        if missing:
            facts["expected"] = list(options.expect)
            return result(
                check,
                Status.CRIT,
                f"{name} {record} is {shown}, expected {', '.join(missing)}",
                latency_ms=latency,
                key_fact=shown,
                facts=facts,
                kind=ErrorKind.DNS_ANSWER,
                evidence=DnsAnswers(tuple(answers), tuple(options.expect), matched=False),
            )
    return result(
        check,
        Status.OK,
        f"{name} {record} → {shown} (TTL {ttl}s, {latency:.1f} ms)",
        latency_ms=latency,
        key_fact=shown,
        facts=facts,
        evidence=DnsAnswers(tuple(answers), tuple(options.expect or ())),
    )


SPEC = CheckSpec(
    key="dns",
    doc="Ask a DNS server for a record of a name.",
    target=HostnameKind(),
    options=DnsOptions,
    probe=probe,
    example="- dns: auth.example.test\n  server: 127.0.0.1:5353\n  expect: [127.0.0.1]",
)
