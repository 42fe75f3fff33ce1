"""The engine's model side in a process of its own.

In one Python process the subscription callbacks (a driver sends ~1000 packets a second) and
the worker share one GIL: every torch op that releases it lets a callback in, and the worker
waits for it back, so a window that costs 37 ms alone took 80-85 ms inside the node (issue 19).
Here the process that subscribes keeps the buffer and the scheduler and cuts each window; a
spawned process owns a second engine (model, outputs and their history) and runs
:meth:`PerceptionEngine.compute` on it. Window events go through shared memory (one block,
regrown when a window outgrows it), results and counters come back pickled. One window is in
flight at a time, so the drop policy (only the newest due window runs) is unchanged.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections.abc import Callable, Iterable
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from event_fm.pipeline.engine import PerceptionEngine, WindowResult
from event_fm.pipeline.scheduler import WindowSpec

MIN_BLOCK_BYTES = 4 << 20


class ComputeProcessError(RuntimeError):
    """The compute process failed to start, died, or failed a window (message says why)."""


def _serve(conn, build: Callable[[], PerceptionEngine],
           warm_size: tuple[int, int] | None) -> None:
    """The child: build and warm the engine, then compute windows until told to stop or the
    parent goes away (the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the
    # parent decides when this process stops
    try:
        engine = build()
        engine.configure_thread()
        seconds = engine.warm_up(warm_size)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails activation
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", {"warm_up_s": seconds, "device": str(engine.device)}))
    block: shared_memory.SharedMemory | None = None
    frame = None
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                break
            if request is None:
                break
            name, count, dtype, spec, t_start, size, outputs, K, new_frame = request
            if block is None or block.name != name:
                if block is not None:
                    block.close()
                block = shared_memory.SharedMemory(name=name)  # the parent's tracker
                # (spawned children share it) unlinks it once, when the parent does
            if new_frame is not None:
                frame = new_frame
            events = np.ndarray(count, dtype=dtype, buffer=block.buf).copy()
            try:
                result = engine.compute(spec, events, t_start, size, outputs, K, frame)
                result.values = {k: v for k, v in result.values.items()
                                 if outputs is None or k in outputs}
                conn.send(("ok", result, engine.compute_stats()))
            except Exception as exc:  # noqa: BLE001 - one bad window, the process goes on
                conn.send(("error", f"{type(exc).__name__}: {exc}", engine.compute_stats()))
    finally:
        if block is not None:
            block.close()


class ComputeProcess:
    """A spawned process running ``build()``'s engine; :meth:`compute` sends it one window.

    ``build`` must pickle (a module-level function or a ``functools.partial`` of one): the
    child starts a fresh interpreter (no fork of a process with DDS threads)."""

    def __init__(self, build: Callable[[], PerceptionEngine],
                 warm_size: tuple[int, int] | None = None, start_timeout_s: float = 600.0):
        self._build = build
        self._warm_size = warm_size
        self._start_timeout_s = start_timeout_s
        self._proc = None
        self._conn = None
        self._block: shared_memory.SharedMemory | None = None
        self._sent_frame_stamp: int | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        """Start the child and wait until its engine is warm; returns its ``ready`` info
        (``warm_up_s``, ``device``). Raises ComputeProcessError with the child's reason."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._build, self._warm_size),
                                 name="event_fm_compute", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        deadline = time.monotonic() + self._start_timeout_s
        while not parent.poll(0.2):
            if not self._proc.is_alive():
                self.close()
                raise ComputeProcessError("the compute process exited while starting")
            if time.monotonic() > deadline:
                self.close()
                raise ComputeProcessError(f"the compute process was not ready within "
                                          f"{self._start_timeout_s:.0f} s")
        message = parent.recv()
        if message[0] != "ready":
            self.close()
            raise ComputeProcessError(message[1])
        self.info = message[1]
        return self.info

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _block_for(self, nbytes: int) -> shared_memory.SharedMemory:
        if self._block is None or self._block.size < nbytes:
            if self._block is not None:
                self._block.close()
                self._block.unlink()
            self._block = shared_memory.SharedMemory(
                create=True, size=max(MIN_BLOCK_BYTES, 2 * nbytes))
        return self._block

    def compute(self, spec: WindowSpec, events: np.ndarray, t_start: int,
                sensor_size: tuple[int, int], outputs: Iterable[str] | None,
                K: np.ndarray | None, frame: tuple[int, np.ndarray] | None
                ) -> tuple[WindowResult, dict]:
        """One window through the child: (its result, the child's compute_stats()).
        Raises ComputeProcessError if the child failed the window or died."""
        if not self.alive:
            raise ComputeProcessError("the compute process is not running")
        events = np.ascontiguousarray(events)
        block = self._block_for(max(1, events.nbytes))
        np.ndarray(len(events), dtype=events.dtype, buffer=block.buf)[:] = events
        new_frame = None
        if frame is not None and frame[0] != self._sent_frame_stamp:
            new_frame, self._sent_frame_stamp = frame, frame[0]
        wanted = None if outputs is None else set(outputs)
        try:
            self._conn.send((block.name, len(events), events.dtype, spec, t_start, sensor_size,
                             wanted, K, new_frame))
            while not self._conn.poll(0.5):
                if not self._proc.is_alive():
                    raise ComputeProcessError(
                        f"the compute process died (exit code {self._proc.exitcode})")
            reply = self._conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise ComputeProcessError(f"the compute process went away: {exc}") from exc
        if reply[0] != "ok":
            raise ComputeProcessError(reply[1])
        return reply[1], reply[2]

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the child to stop, wait, terminate it if it does not; free the block."""
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        if self._proc is not None:
            self._proc.join(timeout_s)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        if self._conn is not None:
            self._conn.close()
        if self._block is not None:
            self._block.close()
            self._block.unlink()
        self._proc = self._conn = self._block = None
        self._sent_frame_stamp = None
