"""litewf against DBOS Transact (the ``dbos`` package, Python): the same workloads, one machine.

Run it in a venv where both ``litewf`` and ``dbos`` (and ``psycopg``) import::

    python benchmarks/versus_dbos.py [--rounds 3] [--quick] [--json FILE]
        [--backend sqlite|postgres ...] [--workload NAME ...] [--pg URL]

Workloads (async APIs on both sides: ``async def`` workflows and steps):

- ``concurrent``: N one-step workflows started at once (asyncio.gather of start + await
  result): workflows/s, and the process's CPU µs per workflow (``time.process_time``).
- ``sequential``: N one-step workflows one after another (start, await result): workflows/s.
- ``xproc``: a workflow loops N times: ``recv`` a message, ``set_event(f"r{i}", msg)``; a
  client in ANOTHER OS process (litewf ``Client``, DBOS ``DBOSClient``) sends ``i`` and waits
  for event ``r{i}``: p50 and p99 ms of that round trip.
- ``messages``: N messages sent by 8 concurrent senders in the same process into one
  workflow that ``recv``s them all and sums them: messages/s end to end.

Backends: SQLite (a fresh file in a fresh temporary folder) and PostgreSQL (a fresh database
``vsdbos_<pid>_<n>``, created before and dropped after each measurement; both libraries get
the same kind of fresh database).

Method: every measurement runs in a fresh subprocess (``--child LIB WORKLOAD BACKEND
TARGET``; DBOS is a process-wide singleton), which prints one JSON line. In each round, for
each backend and workload, litewf then DBOS run back to back, so each round gives one ratio
measured under the same machine load. Ratios: litewf/DBOS for rates, DBOS/litewf for
latencies and CPU per workflow, so a ratio above 1 always means litewf did better.

Settings:

- litewf: ``Runtime(target, durability="full")`` (SQLite: WAL, ``synchronous=FULL``; on
  PostgreSQL the server's defaults, ``synchronous_commit=on``), other options at their
  defaults (``poll_interval=0.01``); ``Client(target)`` in the other process.
- DBOS: ``DBOS(config={"name": ..., "system_database_url": ..., "log_level": "WARNING"})``;
  no ``conductor_key`` (so no Conductor connection), ``enable_otlp`` unset (so no OTLP
  traces or logs); this DBOS version has no admin HTTP server to disable. Other options at
  their defaults (system database pool of 20, LISTEN/NOTIFY on PostgreSQL).
  On SQLite DBOS has no notifications and polls: both its runtime's notification listener
  and a ``DBOSClient``'s ``get_event`` re-check every ``notification_listener_polling_
  interval_sec``, 1.0 s by default. With that default each ``recv``/``get_event`` that waits
  costs up to a second, so on SQLite this script sets it to 0.01 s (litewf's
  ``poll_interval``) for the runtime (``--dbos-sqlite-poll``, its documented option) and,
  as DBOSClient takes no such argument, on the client's system database object (a private
  attribute). DBOS's SQLite engine sets no journal mode or synchronous level: SQLite's
  defaults apply (rollback journal ``DELETE``, ``synchronous=FULL``); each child reads them
  back and records them. On PostgreSQL the client is made with ``use_listen_notify=True``
  (the default False would poll every second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

LIBS = ("litewf", "dbos")
WORKLOADS = ("concurrent", "sequential", "xproc", "messages")
BACKENDS = ("sqlite", "postgres")
FULL_SIZES = {"concurrent": 1000, "sequential": 300, "xproc": 200, "messages": 2000}
QUICK_SIZES = {"concurrent": 50, "sequential": 20, "xproc": 10, "messages": 100}
SENDERS = 8
CHILD_TIMEOUT = 900.0
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULT_MARK = "VSDBOS-RESULT "
SCRIPT = os.path.abspath(__file__)

#: metric -> (unit, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "concurrent": ("workflows/s", True),
    "concurrent_cpu": ("CPU µs/workflow", False),
    "sequential": ("workflows/s", True),
    "xproc_p50": ("ms p50", False),
    "xproc_p99": ("ms p99", False),
    "messages": ("messages/s", True),
}
WORKLOAD_METRICS: dict[str, tuple[str, ...]] = {
    "concurrent": ("concurrent", "concurrent_cpu"),
    "sequential": ("sequential",),
    "xproc": ("xproc_p50", "xproc_p99"),
    "messages": ("messages",),
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _emit(result: dict[str, Any]) -> None:
    print(RESULT_MARK + json.dumps(result), flush=True)


# -- the libraries, each behind the same small interface ------------------------------------


class Side:
    """One library in a child process: start it, run workloads, stop it."""

    name = ""

    async def open(self, target: str, backend: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def one_step(self, i: int) -> int:
        """Start a one-step workflow and await its result."""
        raise NotImplementedError

    async def start_echo(self, n: int) -> str:
        """Start the xproc workflow (recv, set_event n times); its workflow id."""
        raise NotImplementedError

    async def start_drain(self, n: int) -> tuple[str, Callable[[], Awaitable[int]]]:
        """Start the messages workflow; its id and a coroutine function awaiting its sum."""
        raise NotImplementedError

    async def send(self, workflow_id: str, message: int) -> None:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return {}


class LitewfSide(Side):
    name = "litewf"

    async def open(self, target: str, backend: str) -> None:
        import litewf

        self.backend = backend
        self.rt = rt = litewf.Runtime(target, durability="full")

        @rt.step(name="vs.one")
        async def one(i: int) -> int:
            return i

        @rt.workflow(name="vs.workflow")
        async def workflow(i: int) -> int:
            return await one(i)

        @rt.workflow(name="vs.echo")
        async def echo(n: int) -> None:
            for i in range(n):
                message = await rt.recv(timeout=60)
                await rt.set_event(f"r{i}", message)

        @rt.workflow(name="vs.drain")
        async def drain(n: int) -> int:
            total = 0
            for _ in range(n):
                total += await rt.recv(timeout=60)
            return total

        self.workflow, self.echo, self.drain = workflow, echo, drain
        await rt.launch()
        self.target = target

    async def close(self) -> None:
        await self.rt.shutdown()

    async def one_step(self, i: int) -> int:
        handle = await self.rt.start_workflow(self.workflow, i)
        result: int = await handle.get_result()
        return result

    async def start_echo(self, n: int) -> str:
        handle = await self.rt.start_workflow(self.echo, n)
        return handle.workflow_id

    async def start_drain(self, n: int) -> tuple[str, Callable[[], Awaitable[int]]]:
        handle = await self.rt.start_workflow(self.drain, n)
        return handle.workflow_id, handle.get_result

    async def send(self, workflow_id: str, message: int) -> None:
        await self.rt.send(workflow_id, message)

    def settings(self) -> dict[str, Any]:
        if self.backend != "sqlite":
            return {"durability": "full"}
        with sqlite3.connect(self.target) as conn:
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        # litewf sets synchronous per connection: FULL for durability="full".
        return {"durability": "full", "journal_mode": journal, "synchronous": "FULL (2)"}


def _dbos_url(target: str, backend: str) -> str:
    return f"sqlite:///{target}" if backend == "sqlite" else target


class DbosSide(Side):
    name = "dbos"

    def __init__(self, sqlite_poll: float) -> None:
        self.sqlite_poll = sqlite_poll

    async def open(self, target: str, backend: str) -> None:
        from dbos import DBOS, DBOSConfig

        self.backend = backend
        config: DBOSConfig = {
            "name": "vsdbos",
            "system_database_url": _dbos_url(target, backend),
            "log_level": "WARNING",
        }
        if backend == "sqlite":
            config["notification_listener_polling_interval_sec"] = self.sqlite_poll
        self.config = config
        DBOS(config=config)

        @DBOS.step()
        async def one(i: int) -> int:
            return i

        @DBOS.workflow()
        async def workflow(i: int) -> int:
            return await one(i)

        @DBOS.workflow()
        async def echo(n: int) -> None:
            for i in range(n):
                message = await DBOS.recv_async(timeout_seconds=60)
                await DBOS.set_event_async(f"r{i}", message)

        @DBOS.workflow()
        async def drain(n: int) -> int:
            total = 0
            for _ in range(n):
                total += await DBOS.recv_async(timeout_seconds=60)
            return total

        self.dbos = DBOS
        self.workflow, self.echo, self.drain = workflow, echo, drain
        DBOS.launch()

    async def close(self) -> None:
        self.dbos.destroy()

    async def one_step(self, i: int) -> int:
        handle = await self.dbos.start_workflow_async(self.workflow, i)
        result: int = await handle.get_result()
        return result

    async def start_echo(self, n: int) -> str:
        handle = await self.dbos.start_workflow_async(self.echo, n)
        return handle.get_workflow_id()

    async def start_drain(self, n: int) -> tuple[str, Callable[[], Awaitable[int]]]:
        handle = await self.dbos.start_workflow_async(self.drain, n)
        return handle.get_workflow_id(), handle.get_result

    async def send(self, workflow_id: str, message: int) -> None:
        await self.dbos.send_async(workflow_id, message)

    def settings(self) -> dict[str, Any]:
        from importlib.metadata import version

        import sqlalchemy as sa
        from dbos._dbos import _get_dbos_instance  # read-only: the engine's settings

        out: dict[str, Any] = {"dbos": version("dbos")}
        out["config"] = {k: v for k, v in self.config.items() if k != "system_database_url"}
        if self.backend == "sqlite":
            with _get_dbos_instance()._sys_db.engine.connect() as conn:
                out["journal_mode"] = conn.execute(sa.text("PRAGMA journal_mode")).scalar()
                sync = int(conn.execute(sa.text("PRAGMA synchronous")).scalar() or 0)
                names = {0: "OFF (0)", 1: "NORMAL (1)", 2: "FULL (2)", 3: "EXTRA (3)"}
                out["synchronous"] = names.get(sync, str(sync))
        return out


# -- workloads (the child process) ----------------------------------------------------------


async def _concurrent(side: Side, n: int) -> dict[str, Any]:
    cpu, started = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(side.one_step(i) for i in range(n)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert sum(results) == n * (n - 1) // 2, results
    return {"concurrent": n / elapsed, "concurrent_cpu": cpu / n * 1e6, "seconds": elapsed}


async def _sequential(side: Side, n: int) -> dict[str, Any]:
    started = time.perf_counter()
    for i in range(n):
        assert await side.one_step(i) == i
    elapsed = time.perf_counter() - started
    return {"sequential": n / elapsed, "seconds": elapsed}


async def _xproc(side: Side, n: int, target: str, backend: str, poll: float) -> dict[str, Any]:
    workflow_id = await side.start_echo(n)
    command = [sys.executable, SCRIPT, "--xclient", side.name, backend]
    command += [target, workflow_id, str(n), "--dbos-sqlite-poll", str(poll)]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), CHILD_TIMEOUT)
    found = _result_line(out.decode())
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"xproc client failed ({process.returncode}): {err.decode()[-2000:]}")
    times: list[float] = found["times"]
    return {
        "xproc_p50": _percentile(times, 0.5) * 1e3,
        "xproc_p99": _percentile(times, 0.99) * 1e3,
        "seconds": sum(times),
    }


async def _messages(side: Side, n: int) -> dict[str, Any]:
    started = time.perf_counter()
    workflow_id, result = await side.start_drain(n)

    async def send_all(part: int) -> None:
        for _ in range(part, n, SENDERS):
            await side.send(workflow_id, 1)

    await asyncio.gather(*(send_all(part) for part in range(SENDERS)))
    assert await result() == n
    elapsed = time.perf_counter() - started
    return {"messages": n / elapsed, "seconds": elapsed}


async def _child(lib: str, workload: str, backend: str, target: str, n: int, poll: float) -> None:
    side: Side = LitewfSide() if lib == "litewf" else DbosSide(poll)
    await side.open(target, backend)
    try:
        if workload == "concurrent":
            figures = await _concurrent(side, n)
        elif workload == "sequential":
            figures = await _sequential(side, n)
        elif workload == "xproc":
            figures = await _xproc(side, n, target, backend, poll)
        else:
            figures = await _messages(side, n)
        figures["settings"] = side.settings()
    finally:
        await side.close()
    figures["n"] = n
    _emit(figures)


async def _xclient(
    lib: str, backend: str, target: str, workflow_id: str, n: int, poll: float
) -> None:
    """The other process of ``xproc``: send ``i``, wait for event ``r{i}``; each time taken."""
    times: list[float] = []
    if lib == "litewf":
        import litewf

        async with litewf.Client(target) as client:
            for i in range(n):
                t = time.perf_counter()
                await client.send(workflow_id, i)
                got = await client.get_event(workflow_id, f"r{i}", timeout=60)
                times.append(time.perf_counter() - t)
                assert got == i, (got, i)
    else:
        from dbos import DBOSClient

        listen = backend == "postgres"
        dbos_client = DBOSClient(
            system_database_url=_dbos_url(target, backend), use_listen_notify=listen
        )
        if not listen:  # DBOSClient takes no polling interval: set it as DBOS's runtime has it
            dbos_client._sys_db._notification_listener_polling_interval_sec = poll
        try:
            for i in range(n):
                t = time.perf_counter()
                await dbos_client.send_async(workflow_id, i)
                got = await dbos_client.get_event_async(workflow_id, f"r{i}", timeout_seconds=60)
                times.append(time.perf_counter() - t)
                assert got == i, (got, i)
        finally:
            dbos_client.destroy()
    _emit({"times": times})


# -- the parent: fresh targets, rounds, the table -------------------------------------------


def _result_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            found: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return found
    return None


class Targets:
    """Fresh databases: a file in a fresh folder, or a fresh PostgreSQL database."""

    def __init__(self, pg_admin: str) -> None:
        self.pg_admin = pg_admin
        self.count = 0

    @contextmanager
    def fresh(self, backend: str, lib: str) -> Iterator[str]:
        self.count += 1
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="vsdbos-") as folder:
                yield os.path.join(folder, f"{lib}-{self.count}.db")
            return
        import psycopg

        name = f"vsdbos_{os.getpid()}_{self.count}"
        with psycopg.connect(self.pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            base = self.pg_admin.rsplit("/", 1)[0]
            yield f"{base}/{name}"
        finally:
            with psycopg.connect(self.pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Cell:
    backend: str
    workload: str
    runs: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"litewf": [], "dbos": []}
    )


def _measure(
    lib: str, workload: str, backend: str, target: str, n: int, poll: float
) -> dict[str, Any]:
    command = [sys.executable, SCRIPT, "--child", lib, workload, backend]
    command += [target, "--n", str(n), "--dbos-sqlite-poll", str(poll)]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as e:
        return {"error": f"timed out after {CHILD_TIMEOUT} s", "stderr": str(e.stderr)[-3000:]}
    found = _result_line(done.stdout)
    if done.returncode != 0 or found is None:
        error = f"exit {done.returncode}: " + (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": error, "stderr": done.stderr[-3000:]}
    found["wall"] = time.perf_counter() - started
    return found


def _ratio(metric: str, litewf: dict[str, Any], dbos: dict[str, Any]) -> float | None:
    if metric not in litewf or metric not in dbos or not litewf[metric] or not dbos[metric]:
        return None
    higher_better = METRICS[metric][1]
    mine, theirs = float(litewf[metric]), float(dbos[metric])
    return mine / theirs if higher_better else theirs / mine


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _rows(cells: list[Cell]) -> list[dict[str, Any]]:
    rows = []
    for cell in cells:
        for metric in WORKLOAD_METRICS[cell.workload]:
            pairs = list(zip(cell.runs["litewf"], cell.runs["dbos"], strict=True))
            ratios = [_ratio(metric, a, b) for a, b in pairs]
            errors = sorted(
                {r["error"] for r in cell.runs["dbos"] + cell.runs["litewf"] if "error" in r}
            )
            rows.append(
                {
                    "backend": cell.backend,
                    "workload": cell.workload,
                    "metric": metric,
                    "unit": METRICS[metric][0],
                    "litewf": _median([r[metric] for r in cell.runs["litewf"] if metric in r]),
                    "dbos": _median([r[metric] for r in cell.runs["dbos"] if metric in r]),
                    "ratios": ratios,
                    "ratio": _median([r for r in ratios if r is not None]),
                    "errors": errors,
                }
            )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("backend", "workload", "unit", "litewf", "DBOS", "ratio per round", "ratio")
    body = [
        (
            r["backend"],
            r["workload"],
            r["unit"],
            _fmt(r["litewf"]),
            _fmt(r["dbos"]),
            " ".join(_fmt(x) for x in r["ratios"]),
            _fmt(r["ratio"]) + ("  (errors)" if r["errors"] else ""),
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in (head, *body)) for i in range(len(head))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
        for line in (head, *body)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for package in ("litewf", "dbos", "psycopg", "sqlalchemy"):
        try:
            out[package] = version(package)
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            out[package] = f"? ({e})"
    out["platform"] = platform.platform()
    out["cpus"] = str(os.cpu_count())
    return out


def _footer(cells: list[Cell]) -> str:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        if cell.backend != "sqlite":
            continue
        for lib in LIBS:
            for run in cell.runs[lib]:
                if "settings" in run:
                    seen.setdefault((lib, "sqlite"), run["settings"])
    parts = []
    for (lib, _), settings in sorted(seen.items()):
        journal, sync = settings.get("journal_mode"), settings.get("synchronous")
        parts.append(f"{lib} on SQLite: journal_mode={journal}, synchronous={sync}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--json", metavar="FILE", help="save every measurement as JSON")
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL admin URL (autocommit)")
    parser.add_argument(
        "--dbos-sqlite-poll",
        type=float,
        default=0.01,
        help="DBOS notification_listener_polling_interval_sec on SQLite (its default: 1.0)",
    )
    parser.add_argument("--child", nargs=4, metavar=("LIB", "WORKLOAD", "BACKEND", "TARGET"))
    parser.add_argument("--xclient", nargs=5, metavar=("LIB", "BACKEND", "TARGET", "ID", "N"))
    parser.add_argument("--n", type=int)
    args = parser.parse_args(argv)
    poll: float = args.dbos_sqlite_poll
    if args.child:
        lib, workload, backend, target = args.child
        asyncio.run(_child(lib, workload, backend, target, args.n, poll))
        return 0
    if args.xclient:
        lib, backend, target, workflow_id, n = args.xclient
        asyncio.run(_xclient(lib, backend, target, workflow_id, int(n), poll))
        return 0

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    backends = args.backend or list(BACKENDS)
    workloads = args.workload or list(WORKLOADS)
    targets = Targets(args.pg)
    cells = [Cell(b, w) for b in backends for w in workloads]
    started = time.perf_counter()
    for round_number in range(1, args.rounds + 1):
        for cell in cells:
            for lib in LIBS:
                with targets.fresh(cell.backend, lib) as target:
                    n = sizes[cell.workload]
                    run = _measure(lib, cell.workload, cell.backend, target, n, poll)
                cell.runs[lib].append(run)
                shown = {k: round(v, 2) for k, v in run.items() if isinstance(v, float)}
                note = run.get("error", shown)
                print(
                    f"round {round_number} {cell.backend} {cell.workload} {lib}: {note}",
                    file=sys.stderr,
                    flush=True,
                )
    total = time.perf_counter() - started
    rows = _rows(cells)
    versions = _versions()
    print(
        f"litewf vs DBOS, {args.rounds} round(s), {'quick' if args.quick else 'full'} sizes "
        f"({', '.join(f'{w} {sizes[w]}' for w in workloads)}); "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    print(_table(rows))
    print(
        "ratio: litewf/DBOS for rates, DBOS/litewf for ms and CPU µs (>1: litewf better); "
        "medians over rounds; each measurement in a fresh process on a fresh database."
    )
    print(f"{_footer(cells)}; DBOS on SQLite polls every {poll} s (its default 1.0 s).")
    for row in rows:
        for error in row["errors"]:
            print(f"error in {row['backend']} {row['workload']}: {error}")
    print(f"total {total:.0f} s")
    if args.json:
        report = {
            "versions": versions,
            "rounds": args.rounds,
            "quick": args.quick,
            "sizes": sizes,
            "dbos_sqlite_poll": poll,
            "seconds": total,
            "rows": rows,
            "cells": [asdict(c) for c in cells],
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
