"""`stackscope init SOURCE...`: read each source, plan the layout, check it loads, print
it (or write it with -o). Notes for the operator go to stderr; stdout is the layout alone."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from stackscope.discover import emit, lbconfig, livelb
from stackscope.discover.backends import BackendsError
from stackscope.discover.found import FoundLb, Member, safe
from stackscope.exits import EXIT_OK, EXIT_UNKNOWN

KINDS = tuple(lbconfig.READERS)
LIVE_READ = 3  # a live pool takes a few requests (Varnish: greeting, auth, three commands): 3 timeouts in all


def note(text: str) -> None:
    print(f"stackscope init: {safe(text)}", file=sys.stderr)


def read_source(source: str, kind: str | None, opts: lbconfig.Options) -> FoundLb:
    """An LB config file as FoundLb; errors are the gate's (GateError, ConfigError)."""
    from stackscope.lb import ConfigError
    from stackscope.lb.gate import GateError, detect

    kind = kind or detect(source)
    try:
        return lbconfig.READERS[kind](source, opts)
    except ConfigError as exc:
        raise GateError(str(exc)) from None


def _declared(lb: FoundLb, spec: str, port_var: str) -> dict[str, tuple[Member, ...]]:
    from stackscope.discover import backends

    path, groups = backends.read(spec, port_var, tuple(p.name for p in lb.pools))
    with_members = [p for p in lb.pools if p.members]
    if None in groups:
        routed = [p for p in with_members if any(f.pool == p.name for f in lb.frontends)] or with_members
        if not routed:
            raise BackendsError(path, 0, f"{lb.source} has no pool to declare these backends for")
        if len(routed) > 1:
            note(f"--backends {os.path.basename(path)} declares pool {routed[0].name} (of {len(routed)} pools)")
        return {routed[0].name: groups[None]}
    matched = {p.name: groups[p.name] for p in lb.pools if p.name in groups}
    if not matched:
        names = ", ".join(p.name for p in lb.pools)
        raise BackendsError(path, 0, f"no group named like a pool ({names}): write --backends FILE:GROUP")
    for name, members in matched.items():
        if not members:
            raise BackendsError(path, 0, f"group '{name}' has no hosts")
    return matched


def _suspicions(
    plan: emit.Plan, lb: FoundLb, declared: dict[str, tuple[Member, ...]], timeout: float | None
) -> tuple[dict[str, str], dict[str, str]]:
    """({pool: identity header}, {pool or pool/member: why to review}): what already looks
    wrong in the LB's current state. Members it holds out of rotation, pools no frontend
    routes to; with `timeout` (a live source, or --probe), each member asked its health
    path once: those that do not answer, or name themselves unlike the pool's others."""
    from stackscope.discover import members as asked

    reviews: dict[str, str] = {}
    identity: dict[str, str] = {}
    for pool in lb.pools:
        if pool.members and not pool.routed and pool.name not in declared:
            note(f"review: no frontend routes to pool {pool.name} ({pool.origin.text})")
        out = [m for m in pool.members if m.out] if pool.name not in declared else []
        for member in out:
            reviews[f"{pool.name}/{member.name}"] = f"{lb.kind} holds it out now: {member.out}"
            note(f"review {pool.name}/{member.name}: {lb.kind} holds it out of rotation now ({member.out})")
        if out:
            held = ", ".join(f"{m.name} ({m.out})" for m in out)
            reviews[pool.name] = f"{len(out)} of {len(pool.members)} members held out now: {held}"
            plan.review.append(f"pool {pool.name}: {lb.kind} holds {held} out of rotation now")
    if timeout is None:
        return identity, reviews
    pools = {
        p.name: (declared.get(p.name, p.members), p.health_path) for p in lb.pools if p.routed or p.name in declared
    }
    answers = asked.ask(pools, timeout)
    for name, (members, _) in pools.items():
        header, why = asked.judge(name, members, answers)
        if header:
            identity[name] = header
        for member, text in why.items():
            key = f"{name}/{member}"
            reviews[key] = "; ".join(filter(None, (reviews.get(key, ""), text)))
            note(f"review {key}: {text}")
    return identity, reviews


def run(args: Any) -> int:
    from stackscope.lb.gate import GateError

    opts = lbconfig.Options(args.lb_admin, args.secret_file)
    plan = emit.Plan(name=args.name or "stack")
    try:
        lbs = []
        for source in args.sources:
            if livelb.is_live(source):
                lbs.append(livelb.read(source, args.kind, opts, args.frontend, args.timeout * LIVE_READ))
                plan.read.append(f"{safe(source)} (live {lbs[-1].kind})")
            else:
                lbs.append(read_source(source, args.kind, opts))
                plan.read.append(f"{safe(os.path.basename(source))} ({lbs[-1].kind})")
        for index, (source, lb) in enumerate(zip(args.sources, lbs)):
            for text in lb.notes:
                note(text)
            declared = _declared(lb, args.backends, args.port_var) if args.backends and index == 0 else {}
            if args.backends and index == 0:
                plan.read.append(f"--backends {safe(os.path.basename(args.backends))}")
            undeclared = [p.name for p in lb.pools if p.members and p.name not in declared]
            if undeclared:
                note(
                    f"the members of {', '.join(undeclared)} were taken from {lb.source} itself: the LB is no witness "
                    "for itself (a misroute there is declared as the truth); give the real members with --backends FILE"
                )
            ask = livelb.is_live(source) or args.probe
            identity, reviews = _suspicions(plan, lb, declared, args.timeout if ask else None)
            emit.plan_lb(plan, lb, args.frontend if index == 0 else [], declared, identity, reviews)
        if args.local:
            from stackscope.discover import local

            services, lines = local.scan()
            for line in lines:
                note(line)
            emit.plan_services(plan, services)
            plan.read.append("this host's listening sockets (--local)")
    except (GateError, BackendsError, livelb.LiveError) as exc:
        print(f"stackscope: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    if not plan.layers:
        print("stackscope: init found nothing to check (no pool with members, no --local service)", file=sys.stderr)
        return EXIT_UNKNOWN
    if args.name is None and lbs:
        plan.name = f"{lbs[0].kind}-stack"
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        text = emit.render(plan, when)
        if args.probe:
            from stackscope.discover import live

            flagged = live.probe(plan, text)
            for line in flagged:
                note(f"review {line}")
            if flagged:
                plan.review.append(f"{len(flagged)} check(s) failed when init probed them: see `# review:` below")
                text = emit.render(plan, when)
    except emit.InitBug as exc:
        print(f"stackscope: internal error: init built a layout lint refuses: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    if args.output:
        with open(args.output, "x" if not args.force else "w", encoding="utf-8") as out:
            out.write(text)
        note(f"wrote {args.output}; next: stackscope lint {args.output} && stackscope check {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK
