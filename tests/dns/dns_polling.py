"""Waiting in the DNS tests: poll a condition with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


async def until(check: Callable[[], object], what: str, deadline: float = 15.0) -> None:
    """Poll ``check`` (sync, or returning a coroutine) until truthy; fail naming ``what``."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
