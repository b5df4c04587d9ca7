#!/usr/bin/env python3
"""Regenerate docs/demo-lb-misroute.svg: the demo dashboard in the lb-misroute fault,
exported by Textual (run from the project root: python docs/make_screenshot.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stackscope.demo.stack import DemoStack  # noqa: E402
from stackscope.tui.training import DemoApp, DemoController  # noqa: E402


async def shoot(stack: DemoStack, path: Path) -> None:
    app = DemoApp(DemoController(stack))
    async with app.run_test(size=(110, 34)) as pilot:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            verdict = app.diagnosis.verdict if app.diagnosis else None
            stats = stack.client_stats()
            if verdict and verdict.layer == "Load balancer" and stats and stats.window_error_rate > 0.5:
                break
            await pilot.pause(0.2)
        await pilot.pause(0.5)
        app.save_screenshot(filename=path.name, path=str(path.parent))


def main() -> None:
    stack = DemoStack()
    stack.start("lb-misroute")
    try:
        asyncio.run(shoot(stack, ROOT / "docs" / "demo-lb-misroute.svg"))
    finally:
        stack.stop()
    print("wrote docs/demo-lb-misroute.svg")


if __name__ == "__main__":
    main()
