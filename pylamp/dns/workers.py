"""Worker processes for ``python -m pylamp.dns --workers N`` (NSD's ``server-count``).

One Python process answers on one core. With ``--workers N`` the main process binds its UDP
and TCP sockets with ``SO_REUSEPORT`` and :class:`WorkerPool` starts N-1 more processes:
``python -m pylamp.dns`` again, with the same arguments, ``--listen`` set to the port the main
got and ``--worker-of MAIN_PID``. Each binds the same port with ``SO_REUSEPORT``, and the kernel
hands every client (every source address and port) to one of them.

The main alone watches zone files and sends NOTIFY; it passes SIGHUP and every watched reload
on to the workers, which re-read their zone files. A worker whose main has gone away exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

__all__ = [
    "READY_PREFIX",
    "WORKER_FLAG",
    "WorkerError",
    "WorkerPool",
    "reuse_port_supported",
    "watch_main",
]

log = logging.getLogger("pylamp.dns")

#: The internal flag that makes ``python -m pylamp.dns`` a worker of the given main process.
WORKER_FLAG = "--worker-of"
#: What a server prints to stdout once it answers.
READY_PREFIX = b"listening on udp "
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


class WorkerError(RuntimeError):
    """A worker process did not start."""


def reuse_port_supported() -> bool:
    """Whether this platform lets several sockets share a port (``SO_REUSEPORT``)."""
    return hasattr(socket, "SO_REUSEPORT")


class WorkerPool:
    """``count`` worker processes serving ``host:port`` beside this one.

    ``argv`` are the main process's own command-line arguments, given to each worker again.
    """

    def __init__(self, argv: Sequence[str], host: str, port: int, count: int) -> None:
        self._argv = list(argv)
        self._listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._count = count
        self._procs: list[asyncio.subprocess.Process] = []
        self._drains: list[asyncio.Task[None]] = []
        self.stopping = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers started."""
        return [proc.pid for proc in self._procs]

    async def start(self) -> None:
        """Start the workers and wait until each answers; WorkerError if one does not."""
        for _ in range(self._count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pylamp.dns",
                *self._argv,
                "--listen",
                self._listen,
                WORKER_FLAG,
                str(os.getpid()),
                stdout=asyncio.subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches the main only; it stops the workers
            )
            self._procs.append(proc)
        for proc in self._procs:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), _START_TIMEOUT)
            except TimeoutError:
                raise WorkerError(f"worker {proc.pid} did not start in time") from None
            if not line.startswith(READY_PREFIX):
                await proc.wait()
                raise WorkerError(f"worker {proc.pid} exited with status {proc.returncode}")
            self._drains.append(asyncio.create_task(_drain(proc.stdout)))
            log.debug("worker %d listening on %s", proc.pid, self._listen)

    def reload(self) -> None:
        """Make every worker re-read its zone files (SIGHUP)."""
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGHUP)

    async def first_exit(self) -> tuple[int, int]:
        """Wait until a worker exits; its (pid, exit status)."""
        waits = {asyncio.ensure_future(proc.wait()): proc for proc in self._procs}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        proc = waits[next(iter(done))]
        assert proc.returncode is not None
        return proc.pid, proc.returncode

    async def stop(self) -> None:
        """SIGTERM every worker, wait for them (SIGKILL after a while)."""
        self.stopping = True
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self._procs:
            try:
                await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                log.warning("worker %d did not stop; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for drain in self._drains:
            drain.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)


async def _drain(stream: asyncio.StreamReader) -> None:
    """Read a worker's stdout to its end, so it never blocks writing."""
    while await stream.read(4096):
        pass


async def watch_main(main_pid: int, stop: asyncio.Event, interval: float = 1.0) -> None:
    """In a worker: set ``stop`` once the main process is gone (we were re-parented)."""
    while not stop.is_set():
        if os.getppid() != main_pid:
            log.error("main process %d is gone; worker stopping", main_pid)
            stop.set()
            return
        await asyncio.sleep(interval)
