#!/usr/bin/env python3
"""Regenerate docs/classroom.png: the demo dashboard in the dns-wrong-answer fault as a
trainee's browser shows it, served by `stackscope demo --serve` and photographed by a
headless Chromium (tests/chromium.py). Run from the project root:
python docs/make_classroom_screenshot.py (needs textual-serve and Debian's chromium)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stackscope.classroom import Classroom  # noqa: E402
from tests.chromium import Chromium  # noqa: E402


async def shoot(path: Path) -> None:
    os.environ["PYTHONPATH"] = str(ROOT)
    room = Classroom(["demo", "--fault", "dns-wrong-answer"], host="127.0.0.1", port=0, title="stackscope demo")
    runner = await room.start()
    try:
        async with Chromium(1200, 560) as page:
            await page.open(f"{room.public_url}/?fontsize=14")
            await page.wait_for_text("is the broken layer", timeout=60)  # the verdict banner
            mark = len(page.received)
            await page.wait_for_text("\x1b", timeout=10, since=mark)  # one more frame: the panels settled
            await page.screenshot(path)
    finally:
        await runner.cleanup()


def main() -> None:
    asyncio.run(shoot(ROOT / "docs" / "classroom.png"))
    print("wrote docs/classroom.png")


if __name__ == "__main__":
    main()
