"""The crash soak, run by hand: ``python -m tests.faults.soak N [--seed S] [--keep DIR]``.

SIGKILLs the crash-torture workload at ``N`` crash points (random COMMITs, named points
between a write and its acknowledgement, random moments, and streaks inside recovery),
lets every generation of workflows finish, checks every acknowledgement against the
database, and prints the figures. Exits 1 on the first broken guarantee. 1,000 crash
points take about four minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from tests.faults.torture import Violation, torture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__)
    parser.add_argument("crash_points", type=int, help="how many SIGKILLs to survive")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (printed)")
    parser.add_argument("--keep", type=Path, default=None, help="folder for db and log")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="litewf-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"seed {seed}, files in {folder}", flush=True)
    try:
        figures = torture(folder, args.crash_points, seed=seed, progress=True)
    except Violation as exc:
        print(f"GUARANTEE BROKEN (seed {seed}): {exc}", file=sys.stderr)
        return 1
    print(json.dumps(figures.summary(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
