"""The demo dashboard's tests share one way to run the embedded stack."""

from __future__ import annotations

import pytest

from stackscope.demo.stack import DemoStack


@pytest.fixture
def demo_stack():
    stack = DemoStack()
    stack.start()
    yield stack
    stack.stop()
