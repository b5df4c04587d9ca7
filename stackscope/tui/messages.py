"""What reaches the dashboard from the probe thread: Textual messages carrying immutable data.

The engine runs on a thread of its own (loop_thread.LoopThread); its callbacks post these
messages to the app (`App.post_message` is thread-safe), so nothing on the UI side ever
reads the engine's mutable state while a round runs. Each message carries a batch (see
feed.ProbeFeed): a burst of results is one message, not one per check.
"""

from __future__ import annotations

from textual.message import Message

from stackscope.diagnosis import Diagnosis
from stackscope.model import Result, Snapshot

# The class a pushed screen gives the container that j/k and the arrows scroll: the app
# need not know the ids of screens that callers add (the demo's story and debrief).
CURSOR_SCROLLS = "cursor-scrolls"


class ProbesStarted(Message):
    """Probes began: (check id, time.monotonic() at its start) for each. A probe has
    finished when its result arrives (ResultsArrived)."""

    def __init__(self, started: tuple[tuple[str, float], ...]) -> None:
        super().__init__()
        self.started = started


class ResultsArrived(Message):
    """Results that arrived since the last such message, oldest first, and the diagnosis
    they make if the sender computed one (None: the round's end brings it)."""

    def __init__(self, results: tuple[Result, ...], diagnosis: Diagnosis | None = None) -> None:
        super().__init__()
        self.results = results
        self.diagnosis = diagnosis


class RoundFinished(Message):
    """A round ended: its snapshot, or the error that stopped it."""

    def __init__(self, snapshot: Snapshot | None, error: str | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.error = error


class RecordingStopped(Message):
    """The recording stopped (a full disk, its size cap): why, to tell the user once."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why
