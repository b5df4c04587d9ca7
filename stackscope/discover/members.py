"""What each pool member says when asked its health path directly, once: whether it
answers, and whether it names itself in a header (X-Served-By and the like).

One plain GET per member (the request the generated layout's direct check will make),
at most AT_ONCE at a time and MAX_MEMBERS in all, within one deadline. A member that does
not answer, or whose identity is unlike its pool's others, is not declared silently:
`judge` says why it should be reviewed. Header values reach here terminal-safe (the HTTP
client's `_shown`) and are made one-line safe again before they are quoted."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass

from stackscope.discover.found import Member, safe

IDENTITY_HEADERS = (
    "X-Served-By",
    "X-Backend-Server",
    "X-Backend",
    "X-Server",
    "X-Upstream",
    "X-Instance",
    "X-Hostname",
    "X-Node",
)
AT_ONCE = 32
MAX_MEMBERS = 1000
BODY_CAP = 4096


@dataclass(frozen=True)
class Answer:
    ok: bool  # answered 2xx or 3xx
    said: str  # what happened, for a review note
    identities: tuple[tuple[str, str], ...] = ()  # (identity header as named above, its value)


def ask(pools: dict[str, tuple[tuple[Member, ...], str]], timeout: float) -> dict[tuple[str, str], Answer]:
    """{(pool, member name): Answer} for {pool: (members, health path)}, within `timeout`."""
    from stackscope.probes.common import Deadline
    from stackscope.probes.context import ProbeContext

    jobs = [(pool, m, path) for pool, (members, path) in pools.items() for m in members][:MAX_MEMBERS]

    async def run() -> list[Answer]:
        ctx, gate, deadline = ProbeContext(), asyncio.Semaphore(AT_ONCE), Deadline(timeout)

        async def one(member: Member, path: str) -> Answer:
            async with gate:
                return await _one(ctx, member, path, deadline)

        try:
            return await asyncio.gather(*(one(m, path) for _, m, path in jobs))
        finally:
            await ctx.aclose()

    answers = asyncio.run(run()) if jobs else []
    return {(pool, m.name): answer for (pool, m, _), answer in zip(jobs, answers)}


async def _one(ctx, member: Member, path: str, deadline) -> Answer:
    from stackscope.probes.common import ProbeFailure, resolve_host
    from stackscope.probes.httpclient import fetch

    host = f"[{member.host}]" if ":" in member.host else member.host
    try:
        ip, _ = await resolve_host(ctx, member.host, deadline)
        response = await fetch(
            ip,
            member.port,
            deadline=deadline,
            target=path,
            host_header=f"{host}:{member.port}",
            body_cap=BODY_CAP,
            where=f"{host}:{member.port}",
        )
    except ProbeFailure as failure:
        return Answer(False, safe(f"GET {path} directly: {failure.detail}"))
    found = tuple((name, safe(value)) for name in IDENTITY_HEADERS if (value := response.header(name)))
    return Answer(200 <= response.status < 400, safe(f"GET {path} directly answered {response.status_text}"), found)


def _stem(identity: str) -> str:
    """What an identity names apart from its instance number: auth-2 -> auth, web03.dc1 -> web."""
    first = identity.strip().lower().split(".", 1)[0]
    return re.sub(r"[\W_]*\d+$", "", first) or first


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[\W_]+", text.lower()) if w}


def judge(pool: str, members: tuple[Member, ...], answers: dict[tuple[str, str], Answer]) -> tuple[str | None, dict]:
    """(the identity header every answering member sends, or None; {member name: why to
    review}) for one pool."""
    mine = {m.name: answers[(pool, m.name)] for m in members if (pool, m.name) in answers}
    why = {name: f"does not answer its health path: {a.said}" for name, a in mine.items() if not a.ok}
    answering = {name: dict(a.identities) for name, a in mine.items() if a.ok}
    header = next((h for h in IDENTITY_HEADERS if answering and all(h in ids for ids in answering.values())), None)
    if header is None:
        return None, why
    values = {name: ids[header] for name, ids in answering.items()}
    stems = Counter(_stem(v) for v in values.values())
    common, count = stems.most_common(1)[0]
    majority = common if count * 2 > len(values) else None
    for name, value in values.items():
        stem = _stem(value)
        if majority is not None and stem != majority:
            why[name] = f"{header}: {value} — unlike the pool's other members ({majority}…)"
        elif majority is None and len(values) > 1 and not (_words(stem) & _words(pool)):
            why[name] = f"{header}: {value} — names neither the pool {pool} nor what its other members name"
    twice = Counter(values.values())
    for name, value in values.items():  # all alike may be an app naming itself; auth-1 twice is one server
        if twice[value] > 1 and name not in why and (len(twice) > 1 or _stem(value) != value.strip().lower()):
            why[name] = f"{header}: {value}, as another member: the same server twice?"
    return header, why
