"""`stackscope demo` without the dashboard: list, headless, print the layout.

Headless mode keeps the stack up until Ctrl-C (or end of input), prints where the layout
is so `stackscope check` and `watch` can be shown from a second terminal, and, when
standing at a terminal, takes fault names on its input so a trainer can break things
while the class watches the other screen.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TextIO

from stackscope.demo.faults import CLEAR, FAULTS
from stackscope.demo.stack import PORT_NAMES, DemoError, DemoStack, free_ports, layout_text
from stackscope.exits import EXIT_OK, EXIT_UNKNOWN


def list_faults(out: TextIO) -> None:
    """The faults and walkthroughs, folded to the terminal's width (render.text.wrap, the
    report's own wrap: 80 columns off a terminal) under their names."""
    from stackscope.render.text import _width, wrap

    width = _width()
    name_w = max(len(name) for name in FAULTS)
    at = 2 + name_w + 2

    def row(name: str, text: str) -> None:
        lines = wrap(text, width, start=at, indent=at)
        print("\n".join([f"  {name:<{name_w}}  {lines[0]}".rstrip(), *lines[1:]]), file=out)

    def para(text: str) -> None:
        print("\n".join(wrap(text, width, indent=2)), file=out)

    para("Faults (stackscope demo --fault NAME, or the dashboard's i key):")
    for fault in FAULTS.values():
        row(fault.name, f"{fault.title} → verdict: {fault.layer}")
    para(f"  (not a fault: `c` in the dashboard, or '{CLEAR}' at the --headless prompt, restores the healthy stack)")
    from stackscope.demo.walkthrough import builtin_walkthroughs, load_walkthrough

    print(file=out)
    para("Walkthroughs (stackscope demo --walkthrough NAME, or a file of your own):")
    for name, path in builtin_walkthroughs().items():
        # the situation, never the title: it would give the answer away (the debrief tells it)
        summary = " ".join(load_walkthrough(path).summary.split())
        row(name, f"{summary.split('. ')[0].rstrip('.')}.")


def print_layout_once(out: TextIO = sys.stdout) -> int:
    """`demo --print-layout` without --headless: the generated layout's YAML on `out`,
    nothing else, then exit. No server starts: the ports are free ones picked the way the
    stack's servers pick theirs (nothing listens there once this exits)."""
    try:
        ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
    except OSError as error:
        print(f"stackscope: no free port on 127.0.0.1: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    print(layout_text(ports), file=out)
    return EXIT_OK


def run_headless(
    fault: str | None, print_layout: bool, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin, err: TextIO = sys.stderr
) -> int:
    """Run the stack until Ctrl-C. With `print_layout` the YAML is all that goes to `out`
    (so `> layout.yaml` works) and the status lines go to `err`."""
    status = err if print_layout else out
    stack = DemoStack()
    try:
        stack.start(fault)
    except DemoError as error:
        print(f"stackscope: {error}", file=sys.stderr)
        stack.stop()
        return EXIT_UNKNOWN
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if print_layout:
            print(stack.layout_text(), file=out)
            out.flush()
        print(f"layout: {stack.layout_path}", file=status)
        print(f"  stackscope check {stack.layout_path}\n  stackscope watch {stack.layout_path}", file=status)
        if fault:
            print(f"fault: {fault} — {FAULTS[fault].what}", file=status)
        status.flush()
        if stdin.isatty():
            _console(stack, stop, status, stdin)
        else:
            stop.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        stack.stop()
    print("demo stopped", file=status)
    return EXIT_OK


def _console(stack: DemoStack, stop: threading.Event, out: TextIO, stdin: TextIO) -> None:
    """Read fault names from the terminal while the stack runs."""
    print("type a fault name to inject it, 'clear', 'list', or 'quit'", file=out)
    reader = threading.Thread(target=_read_lines, args=(stack, stop, out, stdin), name="demo-console", daemon=True)
    reader.start()
    stop.wait()


def _read_lines(stack: DemoStack, stop: threading.Event, out: TextIO, stdin: TextIO) -> None:
    while not stop.is_set():
        print("fault> ", end="", file=out, flush=True)
        line = stdin.readline()
        if not line:
            break
        word = line.strip()
        if word in ("quit", "exit", "q"):
            break
        if word == "list":
            list_faults(out)
        elif word:
            try:
                stack.inject(word)
                print(f"{word}: {FAULTS[word].what}" if word in FAULTS else "cleared", file=out)
            except DemoError as error:
                print(error, file=out)
    stop.set()
