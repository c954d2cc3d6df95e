"""A DnsServer on its own event loop in a thread, for synchronous tests (hypothesis)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from pylamp.dns.server import DnsServer

TIMEOUT = 5.0


@contextlib.contextmanager
def server_in_thread(**options: Any) -> Iterator[DnsServer]:
    """``DnsServer(**options)`` started on a loop in a daemon thread; stopped on exit."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    running: DnsServer | None = None

    async def run() -> None:
        nonlocal stop, running
        stop = asyncio.Event()
        async with DnsServer(**options) as server:
            running = server
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)
    assert running is not None and stop is not None
    try:
        yield running
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(TIMEOUT)
        loop.close()
