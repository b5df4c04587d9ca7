"""The classroom in a real browser: Debian's headless Chromium opens the page `demo --serve`
serves on 127.0.0.1, and a trainee answers a walkthrough there (a wrong answer, then the
right one, then the debrief) — a real session process running the real demo stack."""

from __future__ import annotations

from stackscope.classroom import Classroom
from tests.chromium import Chromium

# A walkthrough whose fault starts at once (the built-in ones take ~20 s of story first)
WALKTHROUGH = """\
name: classroom-short
title: The zone that moved, short
summary: Logins fail from everywhere. Find the broken layer.
fault: dns-wrong-answer
fault_at: 0
answer: DNS
clock:
  start: "07:10"
  minutes_per_second: 2
events:
  - at: 0
    kind: alert
    text: "The synthetic login check fails from every region"
hints:
  - cost: 10
    text: "How do users find the load balancer?"
debrief:
  root_cause: The migration script copied a stale A record.
  dashboard: The DNS check failed at once.
"""


async def test_a_trainee_answers_a_walkthrough_in_headless_chromium(tmp_path):
    walkthrough = tmp_path / "my walkthrough; $(id).yaml"  # a trainer's file name is quoted, never run
    walkthrough.write_text(WALKTHROUGH)
    room = Classroom(["demo", "--walkthrough", str(walkthrough)], host="127.0.0.1", port=0, title="stackscope demo")
    runner = await room.start()
    try:
        async with Chromium(1280, 800) as page:
            await page.open(f"{room.public_url}/?fontsize=14")
            await page.wait_for_text("name the broken layer", timeout=60)
            assert len(room.sessions) == 1
            await page.evaluate("document.querySelector('.xterm-helper-textarea').focus()")

            mark = len(page.received)
            await page.press("2")  # Load balancer: wrong
            await page.wait_for_text("Not Load balancer", since=mark)
            mark = len(page.received)
            await page.press("1")  # DNS: right, the debrief opens
            await page.wait_for_text("Debrief: classroom-short", since=mark)
            await page.wait_for_text("stale A record", since=mark)
            await page.screenshot(tmp_path / "debrief.png")
        assert (tmp_path / "debrief.png").read_bytes().startswith(b"\x89PNG")
    finally:
        await runner.cleanup()
    assert not room.sessions
