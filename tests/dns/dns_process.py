"""`python -m pylamp.dns` in a subprocess for the CLI tests: start it, wait for its line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

TIMEOUT = 30.0
READY = re.compile(rb"listening on udp (\S+):(\d+) tcp (\S+):(\d+)")


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """`python -m pylamp.dns ARGS` with stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pylamp.dns",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def running(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """The server started with ARGS, once it printed its listening line (UDP and TCP on one
    port); at the end it and any worker processes left are killed."""
    proc = await spawn(*args)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        match = READY.search(line)
        assert match, line
        assert match.group(2) == match.group(4)
        yield proc, int(match.group(2))
    finally:
        workers = children(proc.pid)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()  # also waits for the pipes, which workers share, to close


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found
