"""Real child processes for crash and cross-process tests.

A child is ``python -m tests.children.<module> <args>``; it reports progress by
creating files in a folder the test watches, so the test can SIGKILL it at a known point
without sleeping for guesses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent


def spawn(module: str, *args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """Start ``tests.children.<module>`` in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", f"tests.children.{module}", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def wait_for_file(
    path: Path, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0
) -> None:
    """Wait until ``path`` exists; fail early if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):  # noqa: ASYNC240 - a cheap stat in a polling loop
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"child exited with {proc.returncode} before {path.name} appeared:\n"
                f"{out.decode()}\n{err.decode()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        await anyio.sleep(0.005)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and reap it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    proc.communicate()  # close the pipes, or a ResourceWarning fails the test


def finish(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """Wait for a child to exit successfully; return its stdout."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (
        f"child failed ({proc.returncode}):\n{out.decode()}\n{err.decode()}"
    )
    return out.decode()


async def finish_async(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """``finish`` without blocking the event loop (a runtime here may serve the child)."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(finish, proc, timeout)


def touch(path: str | os.PathLike[str]) -> None:
    """Mark a point reached (used by children); fsync not needed, the test only polls."""
    Path(path).touch()
