"""From a snapshot to a verdict: which layer is broken, why, and what is ruled out.

Pure functions, no I/O. Only the typed evidence in `Result.evidence` (model.py:
HttpAnswer, GrpcAnswer, PoolEvidence, DnsAnswers, StoreState) is read, never fact keys or probe
options. The rules, in the order they apply:

1. A layer's status is the worst of its checks, except a `backend` layer (a pool), where
   some-but-not-all members failing is a WARN: the pool still serves.
2. Layers depend on the groups of layers further down the path (lb -> backend -> db
   and cache as siblings), the nearest first; a group that answers HTTP (or gRPC) directly vouches
   for everything beneath it, one checked only by TCP does not. Every check that
   addresses a host by name also depends on the dns layers.
3. A failing check is *explained* when its failure could be a consequence of a failing
   dependency at least as severe: a 5xx, a gRPC NOT_SERVING or UNAVAILABLE, a timeout,
   a body mismatch or slowness can come from below; a refused connection, a bad certificate, a garbage reply or a drifted
   pool are the layer's own. Any failure of a check that uses a host name is explained
   by a failing dns layer (a wrong address can cause anything).
4. A less severe dependency explains a failure when evidence links the two: an LB's
   timeout or 5xx in the same window as a pool member that fails its direct check, or
   that the LB's own stats show failing (the requests went to it); a backend error that
   quotes a store's error (the store's layer). A layer so explained is only *degraded
   because of* the member (its status capped at its cause's), not broken.
5. Some faults only show when two layers are compared in the same round: an LB that
   marks every backend DOWN while each answers directly (its health check is wrong; MAINT,
   DRAIN or a config `down`/backup-only are worded as what they are), or responses
   through the LB that come from servers no declared backend answers as, or without the
   identity header every declared backend sends (misrouting). These *findings* count
   against the LB like a failing check, and are never explained by anything below it.
   A declared member whose error counters rise on the LB while it answers our check is
   a WARN finding of its backend layer.
6. The verdict names the failing layer that is not explained, the most severe first,
   then the first in the request path. Everything healthy is listed as ruled out with
   its proof, and so is a layer only degraded because of the culprit, which is what
   saves an on-call engineer from chasing the database when the load balancer is at
   fault. The verdict is `confirmed` when every check it rests on is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from stackscope.model import (
    BACKUP,
    DISABLED,
    DOWN_BY_CHECK,
    DRAIN,
    IN,
    MAINT,
    NO_IDENTITY,
    NOLB,
    UNKNOWN,
    WEIGHT_0,
    Check,
    DnsAnswers,
    ErrorKind,
    GrpcAnswer,
    HttpAnswer,
    Layer,
    Layout,
    PoolEvidence,
    PoolMember,
    Result,
    Snapshot,
    Status,
    StoreState,
)
from stackscope.vantage import vantage_headline
from stackscope.words import plural, reads_plural

_SIBLING_ROLES = {"db", "cache"}
_DOWNSTREAM_KINDS = {ErrorKind.TIMEOUT, ErrorKind.SUSPECTED, ErrorKind.CONTENT, ErrorKind.SLOW, ErrorKind.MEMBERS_DOWN}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class CheckState:
    check: Check
    result: Result

    @property
    def status(self) -> Status:
        return self.result.status

    @property
    def http(self) -> HttpAnswer | None:
        evidence = self.result.evidence
        return evidence if isinstance(evidence, HttpAnswer) else None

    @property
    def pool(self) -> PoolEvidence | None:
        evidence = self.result.evidence
        return evidence if isinstance(evidence, PoolEvidence) else None


@dataclass(frozen=True)
class Finding:
    """A fault seen only by comparing layers: it convicts `layer` on the word of `check`."""

    layer: str
    check: str  # id of the check whose result, compared with others, shows the fault
    status: Status
    detail: str
    recovering: bool = False  # the layer broke, answers again, and the LB has yet to take it back


@dataclass(frozen=True)
class LayerState:
    """A layer with its computed status and the state of each of its checks."""

    layer: Layer
    status: Status
    checks: tuple[CheckState, ...]
    findings: tuple[Finding, ...] = ()
    # set when the layer's failures are all explained by a less severe layer below that
    # evidence links them to ("auth-2"): the layer is degraded because of it, not broken
    degraded_by: str = ""

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def failing(self) -> tuple[CheckState, ...]:
        return tuple(c for c in self.checks if c.status.failing)

    @property
    def summary(self) -> str:
        """'3/3 ok', '1/3 failing', '3/3 slow', for panel headers and reports. A WARN is
        not a failure: checks that answer above their threshold are 'slow', other WARNs
        'degraded'."""
        total = len(self.checks)
        if self.degraded_by:
            return f"degraded because of {self.degraded_by}"
        counts = {"failing": 0, "slow": 0, "degraded": 0, "unknown": 0}
        for c in self.checks:
            if c.status is Status.CRIT:
                counts["failing"] += 1
            elif c.status is Status.WARN:
                counts["slow" if c.result.error_kind is ErrorKind.SLOW else "degraded"] += 1
            elif c.status is Status.UNKNOWN:
                counts["unknown"] += 1
        if not any(counts.values()):
            return f"{total}/{total} ok"
        return ", ".join(f"{count}/{total} {word}" for word, count in counts.items() if count)

    @property
    def slow_only(self) -> bool:
        """Every check that is not OK answers, only slowly (WARN, error kind SLOW)."""
        bad = [c for c in self.checks if c.status is not Status.OK]
        return bool(bad) and all(c.status is Status.WARN and c.result.error_kind is ErrorKind.SLOW for c in bad)


@dataclass(frozen=True)
class Verdict:
    """The broken layer and the case for it."""

    layer: str
    role: str
    status: Status
    headline: str  # "Load balancer: 502 Bad Gateway (expected 200)": the layer and why
    evidence: tuple[str, ...]
    ruled_out: tuple[str, ...]
    also_failing: tuple[str, ...]
    more_failing: int = 0  # the layer's other failing checks, besides the one the headline names
    because: tuple[str, ...] = ()  # "Load balancer and Auth backends fail because of it"
    # every failing check the verdict rests on has been confirmed by its re-probes; False
    # while a status change still awaits them (a blip must not flip the banner unmarked)
    confirmed: bool = True
    # the layer that broke answers again and the LB has yet to take it back (recoveries)
    recovering: bool = False
    # ids of the checks the verdict rests on whose results predate the latest change among
    # them: until they are probed again the verdict may name the wrong layer, so it is not
    # shown while streaming (stream.py) and never confirmed
    stale: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """The one line: headline, how many more checks fail, what fails because of it."""
        return self.compose()

    def compose(self, more: str | None = None) -> str:
        """The summary with the count of other failing checks worded by the caller: the
        banner adds where to read them, a report that lists them all leaves it out ("")."""
        if more is None:
            more = f"(+{plural(self.more_failing, 'more failing check')})" if self.more_failing else ""
        return self.headline + (f" {more}" if more else "") + "".join(f"; {clause}" for clause in self.because)

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "role": self.role,
            "status": str(self.status),
            "summary": self.summary,
            "evidence": list(self.evidence),
            "ruled_out": list(self.ruled_out),
            "also_failing": list(self.also_failing),
            "confirmed": self.confirmed,
            "recovering": self.recovering,
        }


@dataclass(frozen=True)
class Diagnosis:
    """Everything a renderer needs: per-layer states, overall status and the verdict."""

    snapshot: Snapshot
    layers: tuple[LayerState, ...]
    verdict: Verdict | None

    @property
    def status(self) -> Status:
        return Status.worst((layer.status for layer in self.layers), default=Status.UNKNOWN)


# --------------------------------------------------------------------------- layer status


def _missing(check: Check) -> Result:
    return Result(check.id, Status.UNKNOWN, "not probed yet", key_fact="…")


def layer_state(layer: Layer, snapshot: Snapshot) -> LayerState:
    states = tuple(CheckState(c, snapshot.results.get(c.id) or _missing(c)) for c in layer.checks)
    statuses = [s.status for s in states]
    status = Status.worst(statuses, default=Status.UNKNOWN)
    if layer.role == "backend" and status is Status.CRIT:
        if any(s in (Status.OK, Status.WARN) for s in statuses):
            status = Status.WARN  # the pool still has members that serve
    return LayerState(layer, status, states)


def assess_layers(snapshot: Snapshot) -> tuple[LayerState, ...]:
    states = tuple(layer_state(layer, snapshot) for layer in snapshot.layout.layers)
    recovering = recoveries(snapshot.layout, states, snapshot.taken_at)
    findings = [r.finding() for r in recovering] + cross_checks(states, recovering)
    if not findings:
        return states
    out = []
    for state in states:
        mine = tuple(f for f in findings if f.layer == state.name)
        if mine:
            status = Status.worst([state.status, *(f.status for f in mine)])
            state = LayerState(state.layer, status, state.checks, mine)
        out.append(state)
    return tuple(out)


# --------------------------------------------------------------------------- recovery

# After the layer that broke answers again, an LB holds its members out until its own
# next health check or retry (model.PoolMember.readmit_s). Past that window, plus one
# round (the LB's state is read once a round) and this margin, a healthy member still
# held out is the LB's fault.
RECOVERY_MARGIN_S = 1.0
_LB_PRODUCTS = {"haproxy": "HAProxy", "nginx": "nginx", "apache": "Apache", "caddy": "Caddy", "varnish": "Varnish"}


@dataclass(frozen=True)
class Recovery:
    """The layer that broke answers again, and the LB has not taken its members back yet.

    What users get through the LB in the meantime (`status`) is still the broken layer's
    doing: the verdict stays on it, worded as recovering, instead of accusing an LB that
    is doing exactly what it is configured to do."""

    layer: str  # the layer that broke: the deepest below the LB that answers again
    check: str  # id of the LB check whose failure the recovery explains
    status: Status  # what users get through the LB meanwhile
    answering: tuple[str, ...]  # the checks below the LB that answer again (names)
    members: tuple[str, ...]  # those of them the LB sends traffic to (backend checks)
    within_s: float  # the longest the LB may still take to send them traffic
    who: str  # "HAProxy", or "the LB" when no pool check says which LB it is

    def finding(self) -> Finding:
        them = "it" if len(self.members) == 1 else "them"
        when = f"within {_seconds_up(self.within_s)}" if self.within_s > 0 else "at its next check"
        verb = "answers" if len(self.answering) == 1 else "answer"
        detail = f"recovering: {_join(list(self.answering), cap=3)} {verb} again; {self.who} takes {them} back {when}"
        return Finding(self.layer, self.check, self.status, detail, recovering=True)


def _seconds_up(seconds: float) -> str:
    whole = int(seconds) + (seconds > int(seconds))
    return f"{max(1, whole)} s"


def recoveries(layout: Layout, layers: tuple[LayerState, ...], now: float) -> list[Recovery]:
    """Every LB whose failures are the trail of a recovery: nothing below it fails now, and
    members it sends traffic to answer again since less than its re-admission window (and
    the margin) before its failing check was read. Each failing check of the LB that a
    layer below could cause (a 5xx, a timeout, members marked down) is then explained by
    the layer that broke, not held against the LB."""
    by_name = {layer.name: layer for layer in layers}
    below = layers_below(layout)
    margin = layout.interval + RECOVERY_MARGIN_S
    out = []
    for lb in layers:
        if lb.layer.role != "lb" or not lb.status.failing:
            continue
        symptoms = [c for c in lb.failing if _explainable_downstream(c.result)]
        groups = [[by_name[name] for name in group] for group in below[lb.name]]
        if not symptoms or any(layer.status.failing for group in groups for layer in group):
            continue
        pools = [c for c in lb.checks if c.pool is not None]
        windows: dict[str, float] = {}
        for state in pools:
            for member in state.pool.declared:  # type: ignore[union-attr]
                if member.readmit_s is not None:
                    windows[member.declared_as] = max(member.readmit_s, windows.get(member.declared_as, 0.0))
        fallback = max(windows.values(), default=layout.interval)
        seen = max(c.result.finished_at for c in symptoms) or now
        answering: list[tuple[int, float, LayerState, CheckState, float]] = []
        for depth, group in enumerate(groups):
            for layer in group:
                for state in layer.checks:
                    since = state.result.changed_at
                    if state.status is not Status.OK or since is None:
                        continue
                    window = windows.get(state.check.name, fallback)
                    if seen - since <= window + margin:
                        answering.append((depth, since, layer, state, window - (seen - since)))
        members = [item for item in answering if item[2].layer.role == "backend"]
        if not members:
            continue
        root = max(answering, key=lambda item: (item[0], -item[1]))[2]  # deepest, then first back
        who = next((_LB_PRODUCTS[c.check.type] for c in pools if c.check.type in _LB_PRODUCTS), "the LB")
        out.append(
            Recovery(
                layer=root.name,
                check=symptoms[0].check.id,
                status=Status.worst(c.status for c in symptoms),
                answering=tuple(item[3].check.name for item in sorted(answering, key=lambda item: -item[0])),
                members=tuple(item[3].check.name for item in members),
                within_s=max(item[4] for item in members),
                who=who,
            )
        )
    return out


# --------------------------------------------------------------------------- cross-checks


def cross_checks(layers: tuple[LayerState, ...], recovering: Iterable[Recovery] = ()) -> list[Finding]:
    """Faults of the LB that only a comparison with the backends reveals, and backend
    members that fail the real traffic the LB sends them while answering our checks.
    Members `recovering` (answering again, inside the LB's re-admission window) are
    not held against the LB's health check."""
    backends = [layer for layer in layers if layer.layer.role == "backend"]
    backend_checks = [c for layer in backends for c in layer.checks]
    coming_back = {name for r in recovering for name in r.members}
    findings: list[Finding] = []
    for layer in layers:
        if layer.layer.role != "lb":
            continue
        for state in layer.checks:
            finding = _health_check_wrong(layer, state, backend_checks, coming_back) or _misrouted(
                layer, state, backend_checks
            )
            if finding is not None:
                findings.append(finding)
            findings += _failing_on_the_lb(state, backends)
    return findings


def _failing_on_the_lb(state: CheckState, backends: list[LayerState]) -> list[Finding]:
    """A declared member whose error, retry or redispatch counters rose on the LB since
    the last round failed real requests, even if it answers our own check: a WARN on its
    backend layer (the LB retried or sent the error on; the member is the one failing)."""
    pool = state.pool
    if pool is None:
        return []
    out = []
    for member in pool.declared:
        if not member.errors_rising:
            continue
        for layer in backends:
            mine = [c for c in layer.checks if c.check.name == member.declared_as]
            if mine and all(not c.status.failing for c in mine):  # failing directly says it better
                check = f" (the LB's check says: {member.check})" if member.check else ""
                out.append(
                    Finding(
                        layer.name,
                        state.check.id,
                        Status.WARN,
                        f"{member.declared_as}: the LB's error, retry or redispatch counters for it rose since the "
                        f"last round — requests sent to it fail{check}",
                    )
                )
    return out


def _out_of_service(member: PoolMember) -> str | None:
    """Why the LB sends a declared member no traffic, from its service word (model: down-by-check,
    maint, drain, nolb, disabled, weight-0, backup), or None if it takes traffic; `unknown`
    for a member whose state the source could not read."""
    service = member.service
    if service == IN:
        return None
    return service if service in _OUT_OF_SERVICE or service == DOWN_BY_CHECK else UNKNOWN


_OUT_OF_SERVICE = {
    MAINT: "is in maintenance (MAINT) on the LB",
    DRAIN: "is draining (DRAIN) on the LB",
    NOLB: "is in NOLB on the LB (takes no new traffic)",
    DISABLED: "is marked `down` in the LB config",
    WEIGHT_0: "has weight 0 in the LB config (takes no traffic)",
    BACKUP: "is only a backup in the LB pool (used when the primaries fail)",
}


def _code(state: CheckState) -> str | None:
    return str(state.http.status_code) if state.http is not None else None


def _health_check_wrong(
    layer: LayerState,
    state: CheckState,
    backend_checks: list[CheckState],
    coming_back: set[str] = frozenset(),  # type: ignore[assignment]
) -> Finding | None:
    """Every declared member is out of service on the LB, yet each answers directly.

    Only members DOWN by failing health checks mean the LB's health check is wrong; a
    member an operator put in MAINT or DRAIN, or a config that marks it `down` or only
    `backup`, is an LB-layer fault too, but a different one, and is worded as such."""
    pool = state.pool
    if pool is None or not backend_checks:
        return None
    declared = pool.declared
    reasons = [_out_of_service(m) for m in declared]
    if not declared or any(r is None or r == UNKNOWN for r in reasons):
        return None
    if any(c.status is not Status.OK for c in backend_checks):
        return None
    codes = sorted({code for c in backend_checks if (code := _code(c)) is not None})
    answer = f"answers {'/'.join(codes)}" if codes else "answers"
    if all(r == DOWN_BY_CHECK for r in reasons):
        if all(m.declared_as in coming_back for m in declared):
            return None  # they are recovering: the LB re-checks them within its window (recoveries)
        check = next((m.check for m in declared if m.check), "")
        seen = f" (the LB's check says: {check})" if check else ""
        return Finding(
            layer.name,
            state.check.id,
            Status.CRIT,
            f"health check fails on the LB but every backend {answer} directly: the LB's health check is wrong{seen}",
        )
    if len(set(reasons)) == 1:
        return Finding(
            layer.name,
            state.check.id,
            Status.CRIT,
            f"every declared backend {_OUT_OF_SERVICE[reasons[0]]} while each {answer} directly",  # type: ignore[index]
        )
    listed = ", ".join(
        f"{m.name} {'DOWN by health check' if r == DOWN_BY_CHECK else m.state}" for m, r in zip(declared, reasons)
    )
    return Finding(
        layer.name,
        state.check.id,
        Status.CRIT,
        f"no declared backend takes traffic on the LB ({listed}) while each {answer} directly",
    )


def _misrouted(layer: LayerState, state: CheckState, backend_checks: list[CheckState]) -> Finding | None:
    """Responses through the LB from servers that no declared backend answers as.

    A response without the identity header counts too when every declared backend that
    is asked for that header sends it directly: another service's servers answered. The
    failing response that ends the sampling does not (it may be the LB's own error page)."""
    answer = state.http
    if answer is None or not answer.identities:
        return None
    through = dict(answer.identities)
    direct = {c.http.identity for c in backend_checks if c.http is not None and c.http.identity}
    if not direct:
        return None
    header = answer.identity_header
    asked = [
        c
        for c in backend_checks
        if c.http is not None
        and c.http.identity_header
        and str(c.http.identity_header).lower() == str(header or "").lower()
    ]
    all_send = bool(asked) and all(c.http.identity for c in asked)  # type: ignore[union-attr]
    strangers = {
        name: count for name, count in through.items() if name not in direct and (name != NO_IDENTITY or all_send)
    }
    if NO_IDENTITY in strangers and state.status is not Status.OK and not answer.identity:
        # the sampling stops at the first failing response: an LB's own error page (a 503
        # when no server is available) carries no identity header and convicts no server
        strangers[NO_IDENTITY] -= 1
        if not strangers[NO_IDENTITY]:
            del strangers[NO_IDENTITY]
    # A member whose direct check failed this round has no identity to compare: a name
    # through the LB may be its own (served just before it died, or just after it came
    # back). Names are strangers for sure only when there are more of them than members
    # whose identity is unknown.
    unknown = [c for c in backend_checks if c.http is None or not c.http.identity]
    named_strangers = [n for n in strangers if n != NO_IDENTITY]
    if named_strangers and len(named_strangers) <= len(unknown):
        for name in named_strangers:
            del strangers[name]
    if not strangers:
        return None
    total = sum(through.values())
    count = sum(strangers.values())
    named = sorted(n for n in strangers if n != NO_IDENTITY)
    parts = []
    if named:
        parts.append(f"from {', '.join(named)} — no declared backend answers as {'it' if len(named) == 1 else 'them'}")
    if NO_IDENTITY in strangers:
        parts.append(
            f"{'' if not named else f'{strangers[NO_IDENTITY]} '}without {header} — every declared "
            "backend sends it directly"
        )
    return Finding(
        layer.name,
        state.check.id,
        Status.CRIT,
        f"through the LB, {count} of {total} responses came {'; '.join(parts)} (directly: {', '.join(sorted(direct))})",
    )


# --------------------------------------------------------------------------- dependencies


def dependency_groups(layout: Layout) -> list[list[Layer]]:
    """Non-dns layers in path order, grouped: db and cache layers next to each other are
    siblings (a backend uses both); every other layer is a group of its own."""
    groups: list[list[Layer]] = []
    for layer in layout.layers:
        if layer.role == "dns":
            continue
        if groups and layer.role in _SIBLING_ROLES and all(l.role in _SIBLING_ROLES for l in groups[-1]):
            groups[-1].append(layer)
        else:
            groups.append([layer])
    return groups


def layers_below(layout: Layout) -> dict[str, list[list[str]]]:
    """Layer name -> every group of layers further down the path, nearest first.

    A layer depends on all of them, not only the next: a backend checked by TCP alone
    can hide the database that makes it fail. Which of them may explain a failure is
    `_explained_by`'s question."""
    groups = [[layer.name for layer in group] for group in dependency_groups(layout)]
    below: dict[str, list[list[str]]] = {layer.name: [] for layer in layout.layers}
    for index, group in enumerate(groups):
        for name in group:
            below[name] = groups[index + 1 :]
    return below


def _vouches(group: list[LayerState]) -> bool:
    """A group that answers HTTP directly proves the path beneath it serves requests, so
    a failure above it cannot be blamed further down. A group seen only through TCP
    connects or process tables proves nothing of the kind."""
    return any(c.check.type in ("http", "grpc") and c.status is Status.OK for layer in group for c in layer.checks)


def _explainable_downstream(result: Result) -> bool:
    if result.error_kind in _DOWNSTREAM_KINDS:
        return True
    answer = result.evidence
    if result.error_kind is ErrorKind.HTTP_STATUS and isinstance(answer, HttpAnswer):
        return answer.status_code >= 500
    if result.error_kind in (ErrorKind.STATE, ErrorKind.HTTP_STATUS) and isinstance(answer, GrpcAnswer):
        # a gRPC service's NOT_SERVING or UNAVAILABLE, or an LB's own 5xx page, is what a
        # broken member passes on through the LB, like a 5xx; anything else is the caller's
        return (
            answer.serving_status == "NOT_SERVING"
            or answer.grpc_status == "UNAVAILABLE"
            or (not answer.grpc_status and answer.http_status >= 500)
        )
    return False


@dataclass(frozen=True)
class Explanation:
    """Why a failing check fails: `cause` is the failing layer that explains it. `linked`
    names what ties the two when the cause is less severe than the failure ("auth-2",
    "Cache's error"): only such evidence lets a degraded layer explain a worse failure."""

    cause: LayerState
    linked: str = ""


def _explained_by(
    state: CheckState,
    layer: LayerState,
    below: list[list[LayerState]],
    dns_layers: Iterable[LayerState],
    pools: list[PoolEvidence] = (),  # type: ignore[assignment]
) -> Explanation | None:
    """The failing layer that explains this failing check of `layer`, or None.

    A dns layer is never explained by a dns layer (itself included): it is where name
    resolution starts, and explaining it by itself would leave no root cause at all."""
    rank = layer.status.rank
    if state.check.hostname and layer.layer.role != "dns":
        for dns_layer in dns_layers:
            # A failed resolution is DNS's doing even when the DNS layer is only slow.
            if dns_layer.status.failing and (
                dns_layer.status.rank >= rank or state.result.error_kind is ErrorKind.RESOLVE
            ):
                return Explanation(dns_layer)
    if not _explainable_downstream(state.result):
        return None
    store = _store_named(state, below)
    if store is not None:
        return store
    for group in below:
        candidates = [d for d in group if d.status.failing and d.status.rank >= rank]
        if candidates:
            return Explanation(max(candidates, key=lambda d: d.status.rank))
        linked = _through_the_pool(state, group, pools)
        if linked is not None:
            return linked
        if _vouches(group):
            break
    return None


def _store_named(state: CheckState, below: list[list[LayerState]]) -> Explanation | None:
    """A failing response whose body quotes a store's error (Redis's `OOM command not
    allowed`, PostgreSQL's read-only transaction) is explained by the failing layer below
    that holds that store, however mild its own status."""
    answer = state.http
    if answer is None or not answer.store_errors:
        return None
    for group in below:
        for candidate in group:
            if not candidate.status.failing:
                continue
            kinds = {_store_kind(c) for c in candidate.checks if c.status is not Status.OK}
            for kind in answer.store_errors:
                if kind in kinds:
                    return Explanation(candidate, f"its {kind} error")
    return None


def _store_kind(state: CheckState) -> str:
    evidence = state.result.evidence
    return evidence.kind if isinstance(evidence, StoreState) else state.check.type


def _through_the_pool(state: CheckState, group: list[LayerState], pools: list[PoolEvidence]) -> Explanation | None:
    """An LB's timeout or 5xx, in the same window as a pool member that fails its direct
    check or that the LB's own stats show failing, is that member's doing: the requests
    that failed went to it. Explained by the member's (degraded) backend layer, unless the
    failing response names a member that answers directly."""
    for candidate in group:
        if candidate.layer.role != "backend" or not candidate.status.failing:
            continue
        # down, or silent right now (suspected: what the LB's request ran into), not slow
        failing = [
            c.check.name
            for c in candidate.checks
            if c.status is Status.CRIT or c.result.error_kind is ErrorKind.SUSPECTED
        ]
        names = {c.check.name for c in candidate.checks}
        failing += [
            m.declared_as
            for pool in pools
            for m in pool.declared
            if m.failing and m.declared_as in names and m.declared_as not in failing
        ]
        if not failing:
            continue
        answer = state.http
        if answer is not None and answer.identity:
            healthy = {c.http.identity for c in candidate.checks if c.status is Status.OK and c.http is not None}
            if answer.identity in healthy:
                continue  # the failing response came from a member that answers directly
        return Explanation(candidate, _join(failing, cap=3))
    return None


# --------------------------------------------------------------------------- verdict


def assess(snapshot: Snapshot) -> Diagnosis:
    """The layers' states and the verdict (None when every layer is ok) for a snapshot."""
    layers = assess_layers(snapshot)
    explained = _explanations(snapshot.layout, layers)
    layers = _degraded(layers, explained)
    return Diagnosis(snapshot, layers, _verdict(snapshot.layout, layers, explained, snapshot.taken_at))


def _explanations(layout: Layout, layers: tuple[LayerState, ...]) -> dict[str, Explanation | None]:
    """Which layer explains each failing layer (None = unexplained: a root cause)."""
    by_name = {layer.name: layer for layer in layers}
    below = layers_below(layout)
    dns_layers = [layer for layer in layers if layer.layer.role == "dns"]
    # an LB check whose failure is the trail of a recovery -> the layer that broke (recoveries)
    recovering = {f.check: layer for layer in layers for f in layer.findings if f.recovering}
    explained: dict[str, Explanation | None] = {}
    for layer in layers:
        if not layer.status.failing:
            continue
        groups = [[by_name[name] for name in group] for group in below[layer.name]]
        pools = [c.pool for c in layer.checks if c.pool is not None]
        back = next((recovering[c.check.id] for c in layer.checks if c.check.id in recovering), None)
        causes = [
            Explanation(back)
            if back is not None and _explainable_downstream(c.result)
            else _explained_by(c, layer, groups, dns_layers, pools)
            for c in layer.failing
        ]
        causes += [None for finding in layer.findings if finding.status.failing]  # always the layer's own
        if causes and all(cause is not None for cause in causes):
            worst = max(causes, key=lambda c: c.cause.status.rank)  # type: ignore[union-attr]
            linked = sorted({c.linked for c in causes if c.linked})  # type: ignore[union-attr]
            if worst.cause.status.rank < layer.status.rank and linked:  # type: ignore[union-attr]
                worst = Explanation(worst.cause, ", ".join(linked))  # type: ignore[union-attr]
            explained[layer.name] = worst
        else:
            explained[layer.name] = None
    return explained


def _degraded(layers: tuple[LayerState, ...], explained: dict[str, Explanation | None]) -> tuple[LayerState, ...]:
    """A layer whose every failure is explained by a less severe layer below is only as
    bad as that layer: an LB that times out on the one hung member of three is degraded
    because of it, not broken."""
    out = []
    for layer in layers:
        why = explained.get(layer.name)
        if why is not None and why.linked and why.cause.status.rank < layer.status.rank:
            layer = LayerState(layer.layer, why.cause.status, layer.checks, layer.findings, degraded_by=why.linked)
        out.append(layer)
    return tuple(out)


def related_layers(layout: Layout, name: str) -> set[str]:
    """The layers whose results decide whether `name` is the broken layer: itself, the
    layers below that could explain it, the layers above that it could explain, and
    the dns layers (which explain anything addressed by name). A dns layer is related
    to every layer."""
    below = layers_below(layout)
    if layout.layer(name).role == "dns":
        return {layer.name for layer in layout.layers}
    related = {name, *(other for group in below[name] for other in group)}
    related |= {other for other, groups in below.items() if any(name in group for group in groups)}
    related |= {layer.name for layer in layout.layers if layer.role == "dns"}
    return related


def stale_evidence(states: Iterable[CheckState], now: float) -> tuple[str, ...]:
    """The checks whose results were known before the latest change among them (a check
    going from OK to failing or back): comparing them with that change would set a
    fresh failure against evidence from before the fault (a backend's 200 from 2 ms
    before it died, next to the LB's 503 of 200 ms later). A suspected check is silent
    as of `now` (its probe is still pending): never stale. Results without times
    (hand-built ones) are never stale."""
    states = list(states)
    moments = [c.result.changed_at for c in states if c.result.changed_at is not None and c.result.finished_at]
    if not moments:
        return ()
    change = max(moments)

    def known(result: Result) -> float:
        return now if result.error_kind is ErrorKind.SUSPECTED else result.finished_at

    return tuple(c.check.id for c in states if c.result.finished_at and known(c.result) < change)


def _verdict(
    layout: Layout, layers: tuple[LayerState, ...], explained: dict[str, Explanation | None], now: float
) -> Verdict | None:
    if all(layer.status is Status.OK for layer in layers):
        return None
    by_name = {layer.name: layer for layer in layers}
    cause_of = {name: (why.cause.name if why is not None else None) for name, why in explained.items()}

    roots = [layer for layer in layers if layer.name in cause_of and cause_of[layer.name] is None]
    if roots:
        culprit = max(roots, key=lambda layer: (layer.status.rank, -layers.index(layer)))
    else:  # only unknown layers: we cannot tell, and must say so rather than claim health
        unknown = [layer for layer in layers if layer.status is Status.UNKNOWN]
        # Explanations only point down the path or at dns, so they cannot go round in a
        # circle; should a rule ever make them, the worst layer is named rather than none.
        culprit = (
            unknown[0]
            if unknown
            else max((l for l in layers if l.status.failing), key=lambda l: (l.status.rank, -layers.index(l)))
        )

    # Layers whose failure traces back to the culprit.
    consequences = []
    for layer in layers:
        seen, name = set(), layer.name
        while name in cause_of and cause_of[name] is not None and name not in seen:
            seen.add(name)
            name = cause_of[name]  # type: ignore[assignment]
        if layer.name != culprit.name and name == culprit.name and layer.name in cause_of:
            consequences.append(layer.name)

    # a layer only degraded (WARN) because of the culprit is not the cause: ruled out, with why
    degraded_only = [by_name[name] for name in consequences if by_name[name].status is Status.WARN]
    related = related_layers(layout, culprit.name)
    stale = stale_evidence((c for layer in layers if layer.name in related for c in layer.checks), now)
    return Verdict(
        layer=culprit.name,
        role=culprit.layer.role,
        status=culprit.status,
        **_summary(culprit, [by_name[name] for name in consequences]),
        evidence=tuple(_evidence(culprit)),
        ruled_out=tuple(
            f"{layer.name}: {proof(layer)}"
            if layer.status is Status.OK
            else f"{layer.name}: {_degraded_proof(layer, culprit.name)}"
            for layer in layers
            if layer.status is Status.OK or layer in degraded_only
        ),
        also_failing=tuple(
            _also_failing(layer, cause_of)
            for layer in layers
            if layer.name != culprit.name and layer.status is not Status.OK and layer not in degraded_only
        ),
        confirmed=_confirmed(culprit) and not stale,
        recovering=any(f.recovering for f in culprit.findings),
        stale=stale,
    )


def _confirmed(culprit: LayerState) -> bool:
    """Every check the verdict rests on (the culprit's failing checks and those whose
    findings convict it) has had its status confirmed by re-probes."""
    ids = {f.check for f in culprit.findings}
    return all(c.result.confirmed for c in culprit.checks if c.status is not Status.OK or c.check.id in ids)


def _degraded_proof(layer: LayerState, culprit: str) -> str:
    """Why a layer that is only degraded because of the culprit is not the cause."""
    ok = [c for c in layer.checks if c.status is Status.OK]
    answering = f"; {len(ok)}/{len(layer.checks)} checks ok" if ok else ""
    how = "slow" if layer.slow_only else "degraded"
    return f"{how} because of {layer.degraded_by or culprit}, not broken{answering}"


def _most_telling(states: list[CheckState]) -> list[CheckState]:
    """Failing checks, the one that best explains the layer first: the most severe, and
    among equals a drifted pool before a symptom such as a 503."""
    return sorted(states, key=lambda c: (-c.status.rank, c.result.error_kind is not ErrorKind.POOL))


def _summary(culprit: LayerState, consequences: list[LayerState]) -> dict:
    failing = _most_telling(list(culprit.failing)) or [c for c in culprit.checks if c.status is Status.UNKNOWN]
    drift = failing and failing[0].result.error_kind is ErrorKind.POOL and failing[0].status is culprit.status
    if culprit.findings and culprit.findings[0].recovering:
        head = f"{culprit.name} {culprit.findings[0].detail}"  # "Auth backends recovering: auth-2 answers again; …"
    elif culprit.findings and not drift:  # a drifted pool names addresses: it beats a corroborating finding
        head = f"{culprit.name}: {culprit.findings[0].detail}"
    elif culprit.status is Status.UNKNOWN:
        head = f"{culprit.name}: cannot tell — {failing[0].result.detail}"
    elif culprit.layer.role == "backend" and culprit.status is Status.WARN and len(failing) < len(culprit.checks):
        # a member that answers, only slowly or degraded, is not "down"
        down = sum(1 for c in failing if c.status is Status.CRIT)
        if down:
            count, word = down, "down"
        else:
            count, word = (
                len(failing),
                "slow" if all(c.result.error_kind is ErrorKind.SLOW for c in failing) else "degraded",
            )
        head = f"{culprit.name}: {count} of {len(culprit.checks)} {word} — {failing[0].check.name}: {failing[0].result.detail}"
    else:
        head = f"{culprit.name}: {failing[0].result.detail}"
    if not culprit.findings and culprit.status is not Status.UNKNOWN:
        head = vantage_headline(culprit.name, failing) or head  # vantage.py: "fails from 1 of 3 vantage points"
    from_finding = culprit.findings and not drift
    counted = (
        len(failing) > 1
        and not from_finding
        and not (culprit.layer.role == "backend" and culprit.status is Status.WARN)
    )
    return {
        "headline": head,
        "more_failing": len(failing) - 1 if counted else 0,
        "because": tuple(_consequence_clauses(consequences)),
    }


def _consequence_clauses(consequences: list[LayerState]) -> list[str]:
    """'Load balancer and Auth backends fail because of it'; a layer that still answers,
    only slowly, 'is slow because of it', and another WARN 'is degraded …'."""
    groups: dict[str, list[str]] = {"fail": [], "slow": [], "degraded": []}
    for layer in consequences:
        if layer.status is not Status.WARN:
            groups["fail"].append(layer.name)
        else:
            groups["slow" if layer.slow_only else "degraded"].append(layer.name)
    clauses = []
    for how, names in groups.items():
        if not names:
            continue
        one = len(names) == 1 and not reads_plural(names[0])  # "App servers fail", "Database fails"
        verb = ("fails" if one else "fail") if how == "fail" else f"{'is' if one else 'are'} {how}"
        clauses.append(f"{_join(names, cap=3)} {verb} because of it")
    return clauses


def _evidence(culprit: LayerState) -> list[str]:
    names = {c.check.id: c.check.name for c in culprit.checks}
    items = [f"{names.get(f.check, f.check)}: {f.status.word} — {f.detail}" for f in culprit.findings]
    items += [
        f"{c.check.name}: {c.status.word} — {c.result.detail}" for c in culprit.checks if c.status is not Status.OK
    ]
    healthy = [c for c in culprit.checks if c.status is Status.OK]
    if healthy and culprit.layer.role == "backend":
        items.append(f"still serving: {', '.join(c.check.name for c in healthy)}")
    return items


def _also_failing(layer: LayerState, explained: dict[str, str | None]) -> str:
    bad = layer.failing or tuple(c for c in layer.checks if c.status is Status.UNKNOWN)
    detail = bad[0].result.detail if bad else layer.summary
    cause = explained.get(layer.name)
    if layer.status is Status.UNKNOWN:
        tail = "cannot tell"
    elif cause:
        tail = f"explained by {cause}"
    else:
        tail = "independent failure"
    return f"{layer.name} ({layer.status}): {detail} — {tail}"


def proof(layer: LayerState) -> str:
    """Why a healthy layer is ruled out, in the words an engineer would use."""
    checks = layer.checks
    total = len(checks)
    types = {c.check.type for c in checks}
    directly = " directly" if layer.layer.role == "backend" else ""
    if types == {"http"}:
        codes = sorted({_code(c) or c.result.key_fact for c in checks})
        return f"{total}/{total} answer {'/'.join(codes)}{directly}"
    if types == {"grpc"}:
        return f"{total}/{total} SERVING{directly}"
    if types == {"tcp"}:
        return f"{total}/{total} accept connections"
    if types == {"dns"}:
        return "; ".join(_dns_proof(c) for c in checks)
    facts = ", ".join(dict.fromkeys(c.result.key_fact for c in checks if c.result.key_fact))
    return f"{total}/{total} checks ok" + (f" ({facts})" if facts else "")


def _dns_proof(state: CheckState) -> str:
    evidence = state.result.evidence
    found = evidence if isinstance(evidence, DnsAnswers) else DnsAnswers(())
    answers = ", ".join(found.answers) or state.result.key_fact
    expected = " as expected" if found.expected and found.matched else ""
    return f"{state.check.address} → {answers}{expected}"


def _join(names: list[str], cap: int | None = None) -> str:
    """'A', 'A and B', 'A, B and C'; past `cap` names, 'A, B and 7 more'."""
    if len(names) <= 1:
        return "".join(names)
    if cap is not None and len(names) > cap:
        return ", ".join(names[:2]) + f" and {len(names) - 2} more"
    return ", ".join(names[:-1]) + " and " + names[-1]


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def verdict_key(verdict: Verdict | None) -> tuple | None:
    """What makes a verdict another verdict: its layer, its status and the first clause
    of its summary with figures masked (a latency or a count that flaps is the same
    verdict; a misrouted pool that became a dead one is not). Here, not in timeline.py,
    so that `check` (stream.py) does not import the timeline to compare two verdicts."""
    if verdict is None:
        return None
    clause = verdict.compose(more="").split(";")[0]
    return verdict.layer, verdict.status, _NUMBER.sub("#", clause)
