"""The `stackscope` command.

Exit codes follow the monitoring-plugins convention: 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN (also a layout that cannot be used). Every subcommand imports what it needs
when it runs, so `stackscope check` never imports Textual and starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from stackscope import __version__, eventloop
from stackscope.exits import EXIT_OK, EXIT_UNKNOWN, TERMINATING
from stackscope.render import FORMATS
from stackscope.words import plural

COMMANDS = ("check", "watch", "lint", "schema", "demo", "export", "rules", "init", "replay", "walkthrough")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which a monitoring system reads as CRITICAL: a
    typo in a check command would page someone about a healthy stack. A usage error says
    nothing about the stack, so it is UNKNOWN (3), as monitoring-plugins require.
    Subcommand parsers are made by the same class (add_subparsers uses type(self))."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stackscope",
        description="Probe every layer of a request path (DNS → load balancer → backends → database) "
        "and say which layer is broken.",
        epilog="Run `stackscope LAYOUT` to open the dashboard. Exit codes: 0 ok, 1 warn, 2 crit, "
        "3 unknown or layout error.",
    )
    parser.add_argument("--version", action="version", version=f"stackscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="probe once and report (for scripts, CI and deploy gates)",
        description="Probe every check once and print the verdict and each layer.",
    )
    check.add_argument("layout", help="layout file (YAML)")
    check.add_argument("--format", "-f", choices=FORMATS, default="text")
    check.add_argument(
        "--watch", "-w", action="store_true", help="repeat every interval until interrupted (json: one line per round)"
    )
    check.add_argument("--rounds", type=int, default=None, help=argparse.SUPPRESS)
    check.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    check.add_argument(
        "--record", metavar="FILE", help="write the incident timeline (Markdown) on exit and a recording (FILE.jsonl)"
    )
    check.set_defaults(run=_cmd_check)

    watch = sub.add_parser(
        "watch", help="open the live dashboard (TUI)", description="Open the live dashboard on a layout."
    )
    watch.add_argument("layout", help="layout file (YAML)")
    watch.add_argument("--plain", action="store_true", help="no TUI: print one line per state or verdict change")
    watch.add_argument(
        "--record",
        metavar="FILE",
        help="write the incident timeline (Markdown) on exit, and keep a recording for `replay` (FILE.jsonl)",
    )
    watch.add_argument("--rounds", type=int, default=None, help=argparse.SUPPRESS)
    watch.set_defaults(run=_cmd_watch)

    lint = sub.add_parser(
        "lint",
        help="validate a layout without probing anything",
        description="Validate a layout without probing anything. With --lb-config, also check "
        "a load balancer's config (haproxy, nginx, Apache httpd, Caddy, Varnish VCL) against the declared backends (a "
        "pre-deploy gate; the LB's own validator runs on it first when installed): exit 0 when they match, "
        "1 on partial drift, 2 when the pool routes elsewhere or the LB refuses the config, 3 when something "
        "cannot be read.",
    )
    lint.add_argument("layout", help="layout file (YAML)")
    lint.add_argument(
        "--lb-config",
        metavar="FILE",
        help="haproxy.cfg, nginx.conf (or saved `nginx -T`), httpd.conf, Caddy JSON or Caddyfile, or VCL",
    )
    lint.add_argument(
        "--pool",
        metavar="NAME",
        help="backend, upstream, balancer, reverse_proxy or director to compare (default: those the layout's LB checks name)",
    )
    lint.add_argument(
        "--resolve",
        action="store_true",
        help="resolve host names (layout resolver, else the system's) instead of reporting them",
    )
    lint.set_defaults(run=_cmd_lint)

    schema = sub.add_parser("schema", help="print the layout's JSON Schema (for editor completion)")
    schema.set_defaults(run=_cmd_schema)

    demo = sub.add_parser(
        "demo",
        help="run an embedded stack to break on purpose, with the dashboard",
        description="Start a small auth stack on 127.0.0.1 (DNS, load balancer, three "
        "backends, a session store, synthetic logins) and open the dashboard on it.",
    )
    demo.add_argument("--fault", metavar="NAME", help="start with this fault injected (see --list)")
    demo.add_argument(
        "--headless", action="store_true", help="no dashboard: print the layout path and keep the stack up until Ctrl-C"
    )
    demo.add_argument(
        "--print-layout",
        action="store_true",
        help="print the generated layout (YAML, alone on stdout) and exit; with --headless, "
        "keep the stack up for it (status lines go to stderr)",
    )
    demo.add_argument("--walkthrough", metavar="NAME", help="play a guided incident (see --list)")
    demo.add_argument("--blind", action="store_true", help="hide the verdict banner (walkthroughs do by default)")
    demo.add_argument("--show-verdict", action="store_true", help="with --walkthrough: do not hide the verdict")
    demo.add_argument("--list", action="store_true", help="list the faults and walkthroughs")
    _add_serve_options(demo)
    demo.set_defaults(run=_cmd_demo)
    _add_prometheus_commands(sub)
    _add_init_command(sub)
    _add_replay_command(sub)
    _add_walkthrough_command(sub)
    return parser


def _add_walkthrough_command(sub) -> None:
    """`walkthrough draft` (stackscope/demo/draft.py): a walkthrough from a recording."""
    walkthrough = sub.add_parser("walkthrough", help="write walkthroughs (guided incidents) for training")
    actions = walkthrough.add_subparsers(dest="walkthrough_command", metavar="ACTION", required=True)
    draft = actions.add_parser(
        "draft",
        help="draft a walkthrough from a recording (`watch --record`)",
        description="Draft a walkthrough from a recording: the verdict changes and the checks turning red as "
        "events at their real offsets, the confirmed root cause as the answer, a debrief skeleton with what the "
        "dashboard showed and when. The story lines are yours: every TODO. Play it with "
        "`stackscope demo --walkthrough FILE`.",
    )
    draft.add_argument("recording", metavar="RECORDING", help="a recording (.jsonl)")
    draft.add_argument("-o", "--output", metavar="FILE", help="write it here (default: print it)")
    draft.set_defaults(run=_cmd_walkthrough_draft)


def _cmd_walkthrough_draft(args: argparse.Namespace) -> int:
    from stackscope.demo.draft import DraftError, draft, render
    from stackscope.safetext import terminal_safe

    out = args.output or os.path.join(os.getcwd(), "walkthrough.yaml")
    try:
        text = render(draft(args.recording, out))
    except DraftError as error:
        print(f"stackscope: cannot draft a walkthrough from {terminal_safe(args.recording)}: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        print(f"stackscope: cannot write {terminal_safe(args.output)}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    print(f"stackscope: walkthrough drafted to {terminal_safe(args.output)}; replace every TODO", file=sys.stderr)
    return EXIT_OK


def _add_replay_command(sub) -> None:
    """`replay` (stackscope/replay.py): a recording played back instead of probes."""
    replay = sub.add_parser(
        "replay",
        help="play back a recording made by `watch --record` (dashboard, or --plain lines)",
        description="Play back a recording (FILE.jsonl, kept by `watch --record FILE` and `check --record FILE`): "
        "the dashboard fed from it, with pause/play, speed and jumps between verdict changes, or with --plain the "
        "verdict lines at their original times. Nothing is probed.",
    )
    replay.add_argument("recording", metavar="FILE", help="a recording (.jsonl)")
    replay.add_argument("--plain", action="store_true", help="no TUI: print the lines `watch --plain` printed")
    replay.add_argument("--markdown", metavar="OUT", help="write the incident timeline (Markdown) rebuilt from it")
    replay.add_argument("--speed", type=float, default=1.0, help="dashboard: start at this speed (1 to 60)")
    _add_serve_options(replay)
    replay.set_defaults(run=_cmd_replay)


def _add_serve_options(parser) -> None:
    """--serve (stackscope/classroom.py): the dashboard in trainees' browsers, one session each."""
    parser.add_argument(
        "--serve",
        metavar="HOST:PORT",
        help="serve the dashboard to browsers (a classroom: one session per tab; needs stackscope[serve])",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=20,
        metavar="N",
        help="with --serve: refuse sessions beyond N at once (default 20)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="with --serve: allow a non-loopback address (no authentication: anyone who reaches it gets a session)",
    )


def _serve_classroom(args: argparse.Namespace, argv: list[str], title: str) -> int:
    """Serve `stackscope ARGV` to browsers. Checked here, before anything listens: the
    address (export's loopback rule), the cap, and textual-serve being installed."""
    from stackscope.listen import ListenError, parse_address

    why = "each browser that reaches it starts a dashboard as your user, and there is no authentication. "
    try:
        host, port = parse_address(args.serve, allow_remote=args.allow_remote, flag="--serve", why=why)
    except ListenError as error:
        print(f"stackscope: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    if args.max_sessions < 1:
        print("stackscope: --max-sessions must be at least 1", file=sys.stderr)
        return EXIT_UNKNOWN
    try:
        from stackscope.classroom import Classroom, ServeError
    except ImportError:
        print(
            "stackscope: --serve needs textual-serve: pip install 'stackscope[serve]' (or pip install textual-serve)",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN
    try:
        return Classroom(argv, host=host, port=port, title=title, max_sessions=args.max_sessions).run()
    except ServeError as error:
        print(f"stackscope: {error}", file=sys.stderr)
        return EXIT_UNKNOWN


def _cmd_replay(args: argparse.Namespace) -> int:
    from stackscope.replay import ReplayError, load, play_lines
    from stackscope.safetext import terminal_safe

    try:
        recording, layout = load(args.recording)
    except ReplayError as error:
        print(f"stackscope: cannot replay {terminal_safe(args.recording)}: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    if recording.problem:
        print(f"stackscope: {terminal_safe(args.recording)}: {recording.problem}", file=sys.stderr)
    if not 1.0 <= args.speed <= 60.0:
        print("stackscope: --speed goes from 1 to 60", file=sys.stderr)
        return EXIT_UNKNOWN
    if args.serve:
        if args.plain or args.markdown:
            print("stackscope: --serve serves the dashboard: not with --plain or --markdown", file=sys.stderr)
            return EXIT_UNKNOWN
        argv = ["replay", os.path.abspath(args.recording), "--speed", repr(args.speed)]
        return _serve_classroom(args, argv, f"stackscope replay: {layout.name}")
    if args.plain or args.markdown or not _can_open_tui():
        from stackscope.timeline import format_time

        print(
            f"stackscope: replaying {layout.name} recorded {format_time(recording.t0)}"
            + (f" by stackscope {recording.written_by}" if recording.written_by != __version__ else ""),
            flush=True,
        )
        code, verdicts, timeline = play_lines(recording, layout, lambda line: print(line, flush=True))
        recorded = [step.line for step in recording.steps if step.kind == "v"]
        if recorded and recorded != verdicts[: len(recorded)]:
            print("stackscope: note: these verdicts differ from those the recording shows live", file=sys.stderr)
        if args.markdown:
            _write_record(timeline, args.markdown)
        return code
    from stackscope.tui.replay import run_replay

    return run_replay(recording, layout, speed=args.speed)


def _add_init_command(sub) -> None:
    """`init` (stackscope/discover/): a layout from the stack's own configs and sockets."""
    init = sub.add_parser(
        "init",
        help="write a layout from LB configs, live LBs and this host's listening services",
        description="Print (or write) a layout, upstream first, that lint accepts and check runs at once. "
        "SOURCE: an LB config (haproxy.cfg, nginx.conf or saved `nginx -T`, httpd.conf, Caddy JSON or Caddyfile, "
        "VCL) or a live LB (an HAProxy stats URL or unix:/admin.sock, an Apache balancer-manager URL, a Caddy "
        "admin URL, varnish://HOST:PORT with --secret-file).",
    )
    init.add_argument("sources", nargs="*", metavar="SOURCE")
    init.add_argument("-o", "--output", metavar="FILE", help="write the layout here (refuses to overwrite)")
    init.add_argument("--force", action="store_true", help="with -o: overwrite FILE")
    init.add_argument("--kind", choices=("haproxy", "nginx", "apache", "caddy", "varnish"), help="the config's LB")
    init.add_argument("--frontend", action="append", default=[], metavar="URL", help="users' entry point (repeatable)")
    init.add_argument(
        "--backends", metavar="FILE[:GROUP]", help="the real members: HOST:PORT lines or an INI inventory"
    )
    init.add_argument("--port-var", default="http_port", metavar="VAR", help="inventory variable with the HTTP port")
    init.add_argument("--lb-admin", metavar="ADDRESS", help="the LB's stats/admin/CLI address for its pool check")
    init.add_argument("--secret-file", metavar="FILE", help="varnishd's -S secret file (for the varnish check)")
    init.add_argument("--local", action="store_true", help="add the databases and caches listening on this host")
    init.add_argument("--probe", action="store_true", help="ask each member its health path, read live LB state")
    init.add_argument("--name", help="the layout's name")
    init.add_argument("--timeout", type=float, default=2.0, help=argparse.SUPPRESS)
    init.set_defaults(run=_cmd_init)


def _cmd_init(args: argparse.Namespace) -> int:
    from stackscope.discover.command import run

    if not args.sources and not args.local:
        print("stackscope init: give an LB config or a live LB as SOURCE, or --local", file=sys.stderr)
        return EXIT_UNKNOWN
    return run(args)


def _add_prometheus_commands(sub) -> None:
    """`export` and `rules` (stackscope/export.py, stackscope/promrules.py)."""
    export = sub.add_parser(
        "export",
        help="probe continuously and serve the results as Prometheus metrics",
        description="Run rounds as `watch` does and serve the latest results on /metrics (Prometheus text "
        "format or OpenMetrics) and /healthz. A scrape never probes. Listens on loopback only unless "
        "--allow-remote. SIGTERM, SIGHUP or Ctrl-C stop it (exit 0).",
    )
    export.add_argument("layout", nargs="+", help="layout file(s) (YAML); each needs its own name")
    export.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9464", help="default 127.0.0.1:9464")
    export.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback listen address (/metrics has no auth)"
    )
    export.add_argument("--rounds", type=int, default=None, help=argparse.SUPPRESS)
    export.set_defaults(run=_cmd_export)

    rules = sub.add_parser(
        "rules",
        help="print Prometheus alerting rules (or, with --alertmanager, an Alertmanager config) for a layout",
        description="Print a Prometheus rule file with one alert per layer of the layout, for the series "
        "`stackscope export` serves; with --alertmanager, an Alertmanager config whose inhibit_rules follow "
        "the layout's dependency order.",
    )
    rules.add_argument("layout", help="layout file (YAML)")
    rules.add_argument("--alertmanager", action="store_true", help="print an Alertmanager config instead")
    rules.add_argument(
        "--webhook", metavar="URL", help="with --alertmanager: a webhook URL for the receiver (default: none)"
    )
    rules.add_argument(
        "--scrape-interval",
        metavar="DURATION",
        default="15s",
        help="Prometheus's scrape interval for `stackscope export` (default 15s): `for:` is at least two of them "
        "and two of the layout's rounds",
    )
    rules.set_defaults(run=_cmd_rules)


def _cmd_export(args: argparse.Namespace) -> int:
    layouts = [load_or_report(path) for path in args.layout]
    if any(layout is None for layout in layouts):
        return EXIT_UNKNOWN
    for layout in layouts:
        _warn_short_secrets(layout)
    from stackscope.export import Exporter, ExportError  # imports prometheus_client: only here

    try:
        exporter = Exporter(layouts, args.listen, allow_remote=args.allow_remote)
    except ExportError as error:
        print(f"stackscope: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    exporter.start_server()
    names = ", ".join(layout.name for layout in layouts)
    print(f"stackscope: exporting {names} on {exporter.url}/metrics (and /healthz); Ctrl-C to stop", flush=True)
    try:
        with _stop_on_hangup():
            _run_async(exporter.run(args.rounds), fast=eventloop.wanted(0, long_running=True))
    except KeyboardInterrupt:
        pass  # Ctrl-C, SIGTERM or SIGHUP: the end of the export, not an error
    finally:
        with _ignoring_hangup():
            exporter.close()
    return EXIT_OK


def _cmd_rules(args: argparse.Namespace) -> int:
    layout = load_or_report(args.layout, require_env=False)
    if layout is None:
        return EXIT_UNKNOWN
    from stackscope.promrules import alertmanager_config, rule_file, webhook_problem

    if args.webhook and not args.alertmanager:
        print("stackscope: --webhook goes with --alertmanager", file=sys.stderr)
        return EXIT_UNKNOWN
    if args.webhook and (problem := webhook_problem(args.webhook)):
        print(f"stackscope: --webhook {problem}", file=sys.stderr)
        return EXIT_UNKNOWN
    from stackscope.kinds import Invalid, parse_duration

    try:
        scrape = parse_duration(args.scrape_interval)
    except Invalid as error:
        print(
            f"stackscope: --scrape-interval: {error.message}" + (f" ({error.fix})" if error.fix else ""),
            file=sys.stderr,
        )
        return EXIT_UNKNOWN
    sys.stdout.write(
        alertmanager_config([layout], webhook=args.webhook) if args.alertmanager else rule_file(layout, scrape)
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `stackscope LAYOUT` is short for `stackscope watch LAYOUT`.
    if args_list and not args_list[0].startswith("-") and args_list[0] not in COMMANDS:
        args_list.insert(0, "watch")
    parser = _parser()
    args = parser.parse_args(args_list)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_UNKNOWN
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return getattr(args, "last_exit", EXIT_UNKNOWN)
    except BrokenPipeError:
        # `stackscope check ... | head`: the reader left; that is not our failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return getattr(args, "last_exit", EXIT_OK)
    except Exception as exc:  # never a traceback for the operator; full one when asked
        if os.environ.get("STACKSCOPE_DEBUG"):
            raise
        print(
            f"stackscope: internal error: {type(exc).__name__}: {exc}\n"
            "(set STACKSCOPE_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN


def load_or_report(path: str, *, require_env: bool = True):
    """The layout, or None after printing every problem to stderr."""
    from stackscope.layout import LayoutError, load_layout

    try:
        return load_layout(path, require_env=require_env)
    except LayoutError as error:
        count = len(error.problems)
        print(f"stackscope: {path}: {plural(count, 'problem')}:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def _cmd_lint(args: argparse.Namespace) -> int:
    layout = load_or_report(args.layout, require_env=False)
    if layout is None:
        return EXIT_UNKNOWN
    checks = sum(len(layer.checks) for layer in layout.layers)
    unset = sorted(name for name in layout.secret_env_names() if name not in os.environ)
    print(f"{args.layout}: ok — {layout.name}: {plural(len(layout.layers), 'layer')}, {plural(checks, 'check')}")
    if unset:
        print(
            f"note: {', '.join(unset)} not set here; `check` and `watch` will need "
            f"{'it' if len(unset) == 1 else 'them'}"
        )
    from stackscope.safetext import terminal_safe

    unread = sorted(terminal_safe(p) for p in layout.secret_file_paths() if layout.file_secret(p) is None)
    if unread:
        print(
            f"note: secret file {', '.join(unread)} cannot be read here; `check` and `watch` will need "
            f"{'it' if len(unread) == 1 else 'them'}"
        )
    for line in _short_secrets(layout):
        print(f"note: {line}")
    for line in layout.warnings:  # a warning, not a problem: the layout still loads (exit 0)
        print(f"warning: {line}")
    if args.lb_config:
        return _lint_lb_config(args, layout)
    return EXIT_OK


def _lint_lb_config(args: argparse.Namespace, layout) -> int:
    """The gate: the LB's own validator on the file first (its words, file:line), then
    each pool against the declared backends. Everything the lint printed about the
    layout is flushed before the gate can write to stderr, so the layout's `ok` line
    always comes first, piped or not."""
    from stackscope.lb import validate
    from stackscope.lb.gate import GateError, detect, gate_status, render, run_gate
    from stackscope.model import Status
    from stackscope.redact import Redactor

    sys.stdout.flush()
    redactor = Redactor.for_layout(layout, os.environ)
    resolve = _blocking_resolver(layout) if args.resolve else None
    try:
        kind = detect(args.lb_config)
    except GateError as error:
        print(f"stackscope: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    validation = validate.validate(kind, args.lb_config)
    refused = validate.status_of(validation)
    print("\n".join(validate.report_lines(validation, redactor.text)), flush=True)
    try:
        reports = run_gate(layout, args.lb_config, pool=args.pool, resolve=resolve)
    except GateError as error:
        print(f"stackscope: {error}", file=sys.stderr)
        return refused.exit_code if refused is Status.CRIT else EXIT_UNKNOWN
    print(render(reports, args.layout, args.lb_config))
    if refused is Status.CRIT:
        print(
            f"{Status.CRIT.label}: {validation.tool} refuses {os.path.basename(args.lb_config)}: the LB would not load it"
        )
    return Status.worst([gate_status(reports), refused]).exit_code


def _blocking_resolver(layout):
    """host -> ip through the layout's resolver (else the system's), for the lint gate."""
    from stackscope.probes.context import ProbeContext, ResolveError

    context = ProbeContext(layout.resolver)

    def resolve(host: str) -> str | None:
        try:
            return asyncio.run(context.resolve(host, 2.0)).ip
        except ResolveError:
            return None

    return resolve


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from stackscope.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from stackscope.demo.faults import FAULTS

    if args.list:
        from stackscope.demo.run import list_faults

        list_faults(sys.stdout)
        return EXIT_OK
    if args.fault and args.fault not in FAULTS:
        from stackscope.kinds import did_you_mean

        hint = did_you_mean(args.fault, tuple(FAULTS)) or "see stackscope demo --list"
        print(f"stackscope: unknown fault '{args.fault}' — {hint}", file=sys.stderr)
        return EXIT_UNKNOWN
    walkthrough = None
    if args.walkthrough:
        from stackscope.demo.walkthrough import find_walkthrough, load_walkthrough
        from stackscope.layout import LayoutError

        if args.fault or args.headless or args.print_layout:
            print("stackscope: a walkthrough injects its own fault and needs the dashboard", file=sys.stderr)
            return EXIT_UNKNOWN
        try:
            walkthrough = load_walkthrough(find_walkthrough(args.walkthrough))
        except LayoutError as error:
            print(f"stackscope: walkthrough {args.walkthrough}:", file=sys.stderr)
            for problem in error.problems:
                print(f"  {problem}", file=sys.stderr)
            return EXIT_UNKNOWN
    if args.serve:
        if args.headless or args.print_layout:
            print("stackscope: --serve serves the dashboard: not with --headless or --print-layout", file=sys.stderr)
            return EXIT_UNKNOWN
        argv = ["demo"] + (["--fault", args.fault] if args.fault else [])
        if args.walkthrough:
            argv += ["--walkthrough", os.path.abspath(find_walkthrough(args.walkthrough))]
        argv += [flag for flag, on in (("--blind", args.blind), ("--show-verdict", args.show_verdict)) if on]
        return _serve_classroom(args, argv, "stackscope demo")
    if args.print_layout and not args.headless:
        from stackscope.demo.run import print_layout_once

        return print_layout_once(sys.stdout)
    if args.headless:
        from stackscope.demo.run import run_headless

        return run_headless(args.fault, args.print_layout)
    if not _can_open_tui():
        print("stackscope: the demo dashboard needs a terminal; use --headless", file=sys.stderr)
        return EXIT_UNKNOWN
    if walkthrough is not None and walkthrough.recording:
        return _play_recorded_walkthrough(walkthrough, blind=not args.show_verdict)
    from stackscope.demo.stack import DemoStack

    stack = DemoStack()
    try:
        stack.start(args.fault)
        from stackscope.tui.training import run_demo_dashboard

        blind = args.blind or (walkthrough is not None and not args.show_verdict)
        return run_demo_dashboard(stack, walkthrough, blind=blind)
    finally:
        stack.stop()


def _play_recorded_walkthrough(walkthrough, *, blind: bool) -> int:
    """A walkthrough with a `recording:`: the recording replayed (tui/recorded.py), no demo stack."""
    from stackscope.replay import ReplayError
    from stackscope.tui.recorded import recorded_walkthrough_app

    try:
        app = recorded_walkthrough_app(walkthrough, blind=blind, handle_signals=True)
    except ReplayError as error:
        print(f"stackscope: cannot replay the walkthrough's recording: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    app.run()
    return app.return_code or 0


def _short_secrets(layout) -> list[str]:
    from stackscope.redact import short_secret_warnings

    return short_secret_warnings(layout, os.environ)


def _warn_short_secrets(layout) -> None:
    for line in _short_secrets(layout):
        print(f"stackscope: warning: {line}", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    layout = load_or_report(args.layout)
    if layout is None:
        return EXIT_UNKNOWN
    _warn_short_secrets(layout)
    if args.record and not _record_paths_usable(args.record):
        return EXIT_UNKNOWN
    from stackscope.diagnosis import assess
    from stackscope.render import render

    color = False if args.no_color else None
    rounds = args.rounds if args.rounds is not None else (None if args.watch else 1)

    from stackscope.stream import VerdictStream, held

    stream = VerdictStream()
    printed = [0]
    shown = [0]  # reports shown so far (text or JSON)

    def show(diagnosis) -> None:
        args.last_exit = diagnosis.status.exit_code
        shown[0] += 1
        if args.watch and args.format == "json":
            import json

            from stackscope.render.jsonout import report_dict

            print(json.dumps(report_dict(diagnosis), ensure_ascii=False, default=str), flush=True)
            return
        if args.watch and printed[0]:
            print("\n" + "─" * 40, flush=True)
        printed[0] += 1
        print(render(diagnosis, args.format, color=color), flush=True)

    # --record: the timeline and the recording `watch --plain --record` would keep
    timeline, recorder = _check_recording(layout, args.record)
    record_round, record_result = _recorded_quietly(timeline, recorder)

    def emit(snapshot) -> None:
        record_round(snapshot)
        diagnosis = assess(snapshot)
        if held(diagnosis) and shown[0]:
            return  # evidence from two moments: the last report stands (stream.held)
        stream.news(diagnosis)
        show(diagnosis)

    def arrived(engine, result) -> None:
        # with --watch, a new verdict is shown as soon as the deciding result is in (see
        # stream.py), besides the report at the end of every round
        snapshot, outstanding = record_result(engine, result)
        diagnosis = stream.judge(snapshot, outstanding)
        if diagnosis is not None and shown[0]:  # the first round's report comes at its end
            show(diagnosis)

    try:
        with _stop_on_hangup():
            fast = eventloop.wanted(sum(1 for _ in layout.checks()), long_running=bool(args.watch))
            _run_async(_watch(layout, emit, rounds, arrived if args.watch or recorder else None), fast=fast)
    finally:
        if args.record and timeline is not None:
            with _ignoring_hangup():
                _write_record(timeline, args.record)
                if recorder is not None:
                    recorder.close()
    return getattr(args, "last_exit", EXIT_UNKNOWN)


def _check_recording(layout, record: str | None):
    if not record:
        return None, None
    from stackscope.timeline import Timeline

    return Timeline(layout.name, source=layout.path, interval=layout.interval), _open_recorder(layout, record)


def _recorded_quietly(timeline, recorder) -> tuple[Callable, Callable]:
    """`check --record`'s side: the rounds and results to the recording and, judged as
    `watch --plain` judges them, to the timeline (nothing printed); `record_result` returns
    per_result's snapshot and outstanding checks for the check's own stream."""
    from stackscope.stream import LineWatch, arrival, per_result

    if timeline is None:
        return (lambda snapshot: None), (lambda engine, result: per_result(engine))
    from stackscope.timeline import VERDICT

    def say(event) -> None:
        if recorder is not None and event.kind == VERDICT:
            recorder.verdict(event.at, event.line())

    watcher = LineWatch(timeline, say)

    def record_round(snapshot) -> None:
        if recorder is not None:
            recorder.round(snapshot.taken_at, snapshot.round, snapshot.duration)
        watcher.round(snapshot)

    def record_result(engine, result):
        snapshot, outstanding, kept = arrival(engine)
        if recorder is not None:
            recorder.result(result, max(1, engine.rounds + 1), kept, snapshot.taken_at if snapshot else None)
        watcher.result(snapshot, outstanding)
        return snapshot, outstanding

    return record_round, record_result


@contextlib.contextmanager
def _stop_on_hangup():
    """SIGTERM (a service manager, `kill`) and SIGHUP (the SSH link or tmux session went
    away) end a watch like Ctrl-C: the probes stop, `--record` is written, and the exit
    code is the last round's status, never 143 or 129. Raising KeyboardInterrupt from
    the handler takes the very path Ctrl-C takes (asyncio.run cancels the tasks, whose
    cleanups run)."""

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {}
    for signum in TERMINATING:
        previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _ignoring_hangup():
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in TERMINATING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _record_paths_usable(record: str) -> bool:
    """Both files `--record` writes (the timeline and the recording) can be written; else
    say why, before probing starts."""
    from stackscope.recording import recording_path

    for path, what in ((record, "timeline"), (recording_path(record), "recording")):
        problem = record_path_problem(path)
        if problem is not None:
            print(f"stackscope: cannot write the {what} to {path}: {problem}", file=sys.stderr)
            return False
    return True


def record_path_problem(path: str) -> str | None:
    """Why `--record PATH` cannot be written, found before probing starts (not after a
    whole session): a missing directory, a directory, a file that refuses writes. The
    file is opened for append (created if need be, then removed again), so nothing an
    earlier session wrote is touched."""
    if os.path.isdir(path):
        return "it is a directory"
    existed = os.path.lexists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    if not existed:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return None


async def _watch(layout, emit: Callable, rounds: int | None, arrived: Callable | None = None) -> None:
    """Probe `rounds` rounds (None: until stopped); `emit` each round's snapshot, and hand
    `arrived(engine, result)` every result as it arrives."""
    from stackscope.engine import Engine, raise_fd_limit, settle_memory

    raise_fd_limit()
    engine = Engine(layout)
    settle_memory()  # the layout and the engine live as long as the process: out of the GC's way
    on_result = (lambda result: arrived(engine, result)) if arrived is not None else None
    try:
        await engine.watch(emit, rounds=rounds, on_result=on_result)
    finally:
        await engine.aclose()


def _cmd_watch(args: argparse.Namespace) -> int:
    layout = load_or_report(args.layout)
    if layout is None:
        return EXIT_UNKNOWN
    _warn_short_secrets(layout)
    if args.record and not _record_paths_usable(args.record):
        return EXIT_UNKNOWN
    plain = args.plain or args.rounds is not None or not _can_open_tui()
    if plain and not args.plain and args.rounds is None:
        print("stackscope: not a terminal (or TERM=dumb): printing changes as lines (--plain)", file=sys.stderr)
    if plain:
        return _watch_plain(layout, args)
    from stackscope.tui import run_dashboard

    return run_dashboard(layout, record=args.record, recorder=_open_recorder(layout, args.record))


def _can_open_tui() -> bool:
    """A full-screen app needs a terminal on both ends and one that can draw, or a session
    of the classroom (`--serve`): textual-serve chose textual's web driver for it."""
    if os.environ.get("TEXTUAL_DRIVER") == "textual.drivers.web_driver:WebDriver":
        return True
    return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


def _watch_plain(layout, args: argparse.Namespace) -> int:
    """`watch --plain`: one line per state or verdict change, from the same transition
    detection as the dashboard's events pane and the incident timeline."""
    from stackscope.kinds import format_duration
    from stackscope.stream import LineWatch
    from stackscope.timeline import VERDICT, Timeline

    timeline = Timeline(layout.name, source=layout.path, interval=layout.interval)
    checks = sum(len(layer.checks) for layer in layout.layers)
    print(
        f"stackscope: watching {layout.name} ({plural(len(layout.layers), 'layer')}, {plural(checks, 'check')}) every "
        f"{format_duration(layout.interval)}; one line per change; Ctrl-C to stop",
        flush=True,
    )

    recorder = _open_recorder(layout, args.record)

    def say(event) -> None:
        print(event.line(), flush=True)
        if recorder is not None and event.kind == VERDICT:
            recorder.verdict(event.at, event.line())

    watcher = LineWatch(timeline, say)
    emit, arrived = _recorded(watcher, recorder)
    try:
        with _stop_on_hangup():
            _run_async(_watch(layout, emit, args.rounds, arrived), fast=eventloop.wanted(0, long_running=True))
    except KeyboardInterrupt:
        pass  # Ctrl-C, SIGTERM or SIGHUP: the end of the watch, not an error
    finally:
        if watcher.status is not None:
            args.last_exit = watcher.status.exit_code
        if args.record:
            with _ignoring_hangup():  # a second signal must not cut the write short
                _write_record(timeline, args.record)
                if recorder is not None:
                    recorder.close()
    return getattr(args, "last_exit", EXIT_UNKNOWN)


def _recorded(watcher, recorder) -> tuple[Callable, Callable]:
    """`watch --plain`'s engine callbacks: each round's end and each result, to the
    recording first (when there is one), then to the LineWatch (stream.py) that judges
    them; `replay --plain` feeds the same LineWatch from the recording."""
    from stackscope.stream import arrival, overran_line

    def emit(snapshot) -> None:
        if recorder is not None:
            recorder.round(snapshot.taken_at, snapshot.round, snapshot.duration)
        watcher.round(snapshot)
        if (line := overran_line(snapshot)) is not None:
            print(line, flush=True)

    def arrived(engine, result) -> None:
        snapshot, outstanding, kept = arrival(engine)
        if recorder is not None:
            at = snapshot.taken_at if snapshot is not None else None
            recorder.result(result, max(1, engine.rounds + 1), kept, at)
        watcher.result(snapshot, outstanding)

    return emit, arrived


def _open_recorder(layout, record: str | None):
    """The Recorder for `--record FILE` (recording.recording_path), or None; a problem
    writing it later stops the recording with a note, never the watch."""
    if not record:
        return None
    from stackscope.layout import LayoutError, layout_text
    from stackscope.recording import Recorder, recording_path

    def stopped(why: str) -> None:
        with contextlib.suppress(OSError):
            print(f"stackscope: {why}", file=sys.stderr)

    try:
        return Recorder(recording_path(record), layout, layout_text(layout.path), on_stop=stopped)
    except (OSError, LayoutError) as exc:  # checked at start-up; the layout file may have gone since
        stopped(f"cannot write the recording {recording_path(record)}: {getattr(exc, 'strerror', None) or exc}")
        return None


def _write_record(timeline, path: str) -> None:
    try:
        timeline.write(path)
        message = f"stackscope: timeline written to {path}"
    except OSError as exc:
        message = f"stackscope: cannot write the timeline to {path}: {exc.strerror or exc}"
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        print(message, file=sys.stderr)


# While a stop asked for has not ended the run, it is asked again this often (see _run_async).
RECANCEL_EVERY = 0.1


def _run_async(coro, *, fast: bool = False) -> None:
    """Run `coro`; Ctrl-C, SIGTERM or SIGHUP while it runs cancel it cleanly and then raise
    KeyboardInterrupt, as `_stop_on_hangup`'s handler does outside the loop. (Raised from a
    signal handler inside the loop, KeyboardInterrupt could land while a round creates its
    tasks and leave one pending: "Task was destroyed but it is pending!" on stderr.)

    The cancellation is repeated until the run has ended: on Python 3.10 `asyncio.wait_for`
    and a timeout that fires in the same moment can swallow a cancellation (fixed in 3.12),
    and a watch that lost its one cancellation would go on probing forever."""

    async def main() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        caught: list[int] = []
        installed: dict[int, Any] = {}  # signum -> signal.getsignal(): a handler, SIG_DFL/SIG_IGN or None

        def cancel_until_done() -> None:
            if not task.done():
                task.cancel()
                loop.call_later(RECANCEL_EVERY, cancel_until_done)

        def stop(signum: int) -> None:
            caught.append(signum)
            cancel_until_done()

        for signum in (signal.SIGINT, *TERMINATING):
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(signum, stop, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such support
                continue
            installed[signum] = previous
        try:
            await task
        except asyncio.CancelledError:
            if caught:
                raise KeyboardInterrupt(signal.Signals(caught[0]).name) from None
            raise
        finally:
            for signum, previous in installed.items():
                loop.remove_signal_handler(signum)
                signal.signal(signum, previous)

    eventloop.run(main(), fast=fast)  # uvloop when `fast` (eventloop.py)
