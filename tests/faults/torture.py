"""The crash-torture driver and checker, shared by the quick test and the soak command.

The driver runs ``tests.children.faults_workload`` again and again on one database file,
SIGKILLing it at random moments, at a random COMMIT (just before or just after it), at
named points between a write and its acknowledgement, and several times in a row during
recovery itself. A generation of workflows that completes is checked at once against what
the child logged after each acknowledgement; a killed one is resumed by the next child.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litewf._pgdialect import is_postgres_url
from tests import sqldb
from tests.children.faults_workload import POINTS, ext_id, node_id

ROOT = Path(__file__).resolve().parent.parent.parent

#: A generation needs about this many COMMITs from start to finish (4 nodes, 3 + 2
#: messages): 24 measured with group commit (78 when every write committed alone).
COMMITS_PER_GENERATION = 24


@dataclass
class Figures:
    """What a torture run did and found; every "lost" and "duplicated" must stay 0."""

    crash_points: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    recovery_kills: int = 0
    rounds: int = 0
    generations: int = 0
    workflows: int = 0
    acknowledged: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    events_read: int = 0
    step_bodies: int = 0
    step_reruns: int = 0
    integrity_checks: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "crash points survived (SIGKILLs)": self.crash_points,
            "  of which during recovery (several in a row)": self.recovery_kills,
            "  by kind": dict(sorted(self.kills.items())),
            "child processes run": self.rounds,
            "generations completed": self.generations,
            "workflows completed (all SUCCESS)": self.workflows,
            "messages acknowledged": self.acknowledged,
            "messages delivered to workflow code": self.delivered,
            "messages lost": self.lost,
            "messages duplicated": self.duplicated,
            "event reads checked": self.events_read,
            "step bodies run": self.step_bodies,
            "step bodies run again after a crash": self.step_reruns,
            "PRAGMA integrity_check runs (all ok)": self.integrity_checks,
            "seconds": round(self.seconds, 1),
        }


class Violation(AssertionError):
    """A broken guarantee, with the evidence."""


def integrity(db: Path) -> None:
    if is_postgres_url(db):
        return  # the server checks its own pages (there is no integrity_check to run)
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()
    if rows != [("ok",)]:
        raise Violation(f"integrity_check: {rows}")


def read_log(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines():
        records.append(json.loads(line))  # os.write of one line is never torn by SIGKILL
    return records


def check_generation(
    db: Path, log: list[dict[str, Any]], gen: int, nodes: int, ring: int, ext: int
) -> Figures:
    """Prove every logged acknowledgement against the database of a finished generation."""
    ids = [node_id(gen, i) for i in range(nodes)]
    con = sqldb.connect(db, timeout=30)
    try:
        marks = ",".join("?" * nodes)
        rows = con.execute(
            f"SELECT workflow_id, status, output FROM workflows WHERE workflow_id IN ({marks})",
            ids,
        ).fetchall()
        events = dict(
            con.execute(
                f"SELECT workflow_id, value FROM events WHERE key = 'v' AND workflow_id IN ({marks})",
                ids,
            ).fetchall()
        )
        leftover = con.execute(
            f"SELECT destination_id, topic, message FROM messages "
            f"WHERE destination_id IN ({marks})",
            ids,
        ).fetchall()
    finally:
        con.close()
    status = {r[0]: r[1] for r in rows}
    if status != dict.fromkeys(ids, "SUCCESS"):
        raise Violation(f"generation {gen}: not every workflow SUCCESS: {status}")
    out = {r[0]: json.loads(r[2]) for r in rows}
    event = {k: json.loads(v) for k, v in events.items()}
    figures = Figures(generations=1, workflows=nodes)
    mine = [r for r in log if r.get("wf", r.get("to", r.get("of"))) in out]

    # Messages: FIFO ring order, every external message once, nothing left queued.
    delivered: Counter[str] = Counter()
    for i, wid in enumerate(ids):
        pred = ids[(i - 1) % nodes]
        if out[wid]["ring"] != [f"{pred}>{j}" for j in range(ring)]:
            raise Violation(f"{wid}: ring messages {out[wid]['ring']}")
        if sorted(out[wid]["ext"]) != sorted(ext_id(gen, i, j) for j in range(ext)):
            raise Violation(f"{wid}: external messages {out[wid]['ext']}")
        delivered.update(out[wid]["ring"])
        delivered.update(out[wid]["ext"])
    acked = {r["msg"] for r in mine if r["k"] in ("sent", "ext_ack")}
    figures.acknowledged = len(acked)
    figures.delivered = sum(delivered.values())
    figures.lost = len(acked - set(delivered))
    figures.duplicated = sum(n - 1 for n in delivered.values()) + len(leftover)
    if figures.lost or figures.duplicated:
        raise Violation(
            f"generation {gen}: lost {sorted(acked - set(delivered))}, duplicated "
            f"{[m for m, n in delivered.items() if n > 1]}, left queued {leftover}"
        )

    # Every value workflow code saw, in every run, is the recorded one (replay identity).
    expected: dict[tuple[str, str, str], Any] = {}
    for i, wid in enumerate(ids):
        o = out[wid]
        expected[("step", wid, "a")] = o["v"]
        expected[("step", wid, "b")] = o["w"]
        expected[("recv", wid, "go")] = "go"
        for j in range(ring):
            expected[("recv", wid, f"ring{j}")] = o["ring"][j]
        for j in range(ext):
            expected[("recv", wid, f"ext{j}")] = o["ext"][j]
        expected[("event_read", wid, "")] = event[ids[(i + 1) % nodes]]
        expected[("event_set", wid, "")] = event[wid]
        expected[("ext_event_read", wid, "")] = event[wid]
        expected[("result", wid, "")] = o
        if o["v"] != event[wid] or o["peer_v"] != event[ids[(i + 1) % nodes]]:
            raise Violation(f"{wid}: event values changed: {o} vs {event}")
    bodies: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in mine:
        kind = r["k"]
        if kind == "body":
            bodies[(r["wf"], r["label"])].append(r["v"])
            continue
        if kind in ("sent", "ext_ack", "start", "launched", "done"):
            continue
        key = (kind, str(r.get("wf", r.get("of"))), str(r.get("op", "")))
        if key not in expected:
            raise Violation(f"unexpected log record {r}")
        if r["v"] != expected[key]:
            raise Violation(f"{key}: run {r['run']} saw {r['v']!r}, recorded {expected[key]!r}")
        if kind in ("event_read", "ext_event_read"):
            figures.events_read += 1

    # Steps: at least once; the recorded outcome is the value of one of its runs.
    for wid in ids:
        for label, value in (("a", out[wid]["v"]), ("b", out[wid]["w"])):
            runs = bodies[(wid, label)]
            if value not in runs:
                raise Violation(f"{wid} step {label}: recorded {value}, bodies ran {runs}")
            figures.step_bodies += len(runs)
            figures.step_reruns += len(runs) - 1
    return figures


def add(total: Figures, part: Figures) -> None:
    for name in (
        "generations",
        "workflows",
        "acknowledged",
        "delivered",
        "lost",
        "duplicated",
        "events_read",
        "step_bodies",
        "step_reruns",
    ):
        setattr(total, name, getattr(total, name) + getattr(part, name))


def spawn(
    db: Path, log: Path, gen: int, spec: str, shape: tuple[int, int, int]
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [str(db), str(log), str(gen), *map(str, shape), spec]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.children.faults_workload", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


class Planner:
    """Chooses the next kill: mostly at a random COMMIT, else a named point or a timer;
    every eighth crash starts a streak of three kills inside recovery."""

    def __init__(self, rng: random.Random, *, commits: bool = True) -> None:
        self.rng = rng
        self.streak = 0
        #: Whether kills at COMMITs are possible (SQLite's aiosqlite hook); else named
        #: points and timers only (PostgreSQL).
        self.commits = commits

    def next(self, crashes: int, in_progress: bool) -> tuple[str, float | None, bool]:
        """(spec for the child, delay before an external SIGKILL or None, is recovery kill)."""
        rng = self.rng
        if self.streak == 0 and in_progress and crashes % 8 == 7:
            self.streak = 3
        if self.streak:
            self.streak -= 1
            if not self.commits:
                return "none", rng.uniform(0.02, 0.3), True
            return f"commit:{rng.choice(['before', 'after'])}:{rng.randint(1, 2)}", None, True
        roll = rng.random()
        if roll < 0.6 and self.commits:
            where = rng.choice(["before", "after"])
            return f"commit:{where}:{rng.randint(1, COMMITS_PER_GENERATION)}", None, False
        if roll < 0.85:
            return f"point:{rng.choice(POINTS)}:{rng.randint(1, 6)}", None, False
        return "none", rng.uniform(0.02, 0.25), False  # a run takes about 0.2 s


def torture(
    folder: Path,
    crash_points: int,
    *,
    seed: int,
    shape: tuple[int, int, int] = (4, 3, 2),
    progress: bool = False,
    url: str | None = None,
) -> Figures:
    """Crash the workload ``crash_points`` times, finish it, check everything; raise
    ``Violation`` on the first broken guarantee."""
    started = time.monotonic()
    db, log = folder / "torture.db", folder / "torture.log"
    if url is not None:  # a PostgreSQL database: no COMMIT kills (see Planner)
        db = url  # type: ignore[assignment]  # the children take a URL where paths go
    rng = random.Random(seed)
    planner = Planner(rng, commits=url is None)
    total = Figures()
    gen, in_progress = 0, False
    finishing = False
    while True:
        if total.crash_points >= crash_points:
            finishing = True
        spec, delay, recovery = (
            ("none", None, False) if finishing else planner.next(total.crash_points, in_progress)
        )
        proc = spawn(db, log, gen, spec, shape)
        if delay is not None:
            try:
                proc.wait(timeout=delay)  # a random moment (the child may finish first)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        total.rounds += 1
        stderr = err.decode()
        if "locked" in stderr.lower():
            raise Violation(f"'database is locked' reached the child:\n{stderr}")
        if proc.returncode == -signal.SIGKILL:
            total.crash_points += 1
            total.kills[spec.rsplit(":", 1)[0] if delay is None else "timer"] += 1
            total.recovery_kills += recovery
            in_progress = True
            if total.crash_points % 10 == 0:
                integrity(db)
                total.integrity_checks += 1
            if progress and total.crash_points % 50 == 0:
                print(f"{total.crash_points} crash points, generation {gen}", flush=True)
            continue
        if proc.returncode != 0 or out.decode().split() != ["done"]:
            raise Violation(f"child ({spec}) exited {proc.returncode}:\n{out.decode()}\n{stderr}")
        integrity(db)
        total.integrity_checks += 1
        add(total, check_generation(db, read_log(log), gen, *shape))
        gen, in_progress = gen + 1, False
        if finishing:
            break
    total.seconds = time.monotonic() - started
    return total
