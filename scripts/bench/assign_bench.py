#!/usr/bin/env python3
"""Time the seed's Python ABRouter, single-threaded, as the baseline for `bakeoff assign`.

Run from the repository root (standard library only):

    .venv/bin/python scripts/bench/assign_bench.py [N] [--write-ids PATH]

N (default 1000000) IDs "user-0" ... "user-<N-1>" are built before timing starts; only the assign() loop
is timed, best of --repeat runs (default 3). python_ids_per_sec uses the process's CPU time, so other load
on a shared machine does not make Python look slower than it is; wall_ids_per_sec is the wall-clock rate.
Prints one JSON object, e.g.
{"python_ids_per_sec": 1234567.0, "wall_ids_per_sec": 1200000.0, "n": 1000000, "cpu_seconds": 0.81, ...}.
--write-ids writes the same IDs, one per line, so the Swift side can be timed on identical input.
"""

import argparse
import hashlib
import json
import platform
import sys
import time
from typing import Literal


# --- The seed's reference router, verbatim. ---------------------------------------------------------
class ABRouter:
    """Deterministic A/B routing by user_id"""

    def __init__(self, experiment_name: str, split: float = 0.5):
        self.experiment_name = experiment_name
        self.split = split  # Share of traffic for variant B

    def assign(self, user_id: str) -> Literal["control", "treatment"]:
        """Single user always goes to same group"""
        hash_input = f"{self.experiment_name}:{user_id}"
        hash_value = int(hashlib.md5(hash_input.encode()).hexdigest(), 16)
        normalized = (hash_value % 10000) / 10000
        return "treatment" if normalized < self.split else "control"
# ------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000, help="number of IDs (default 1000000)")
    parser.add_argument("--experiment", default="fine-tuned-v2-test")
    parser.add_argument("--split", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the fastest is reported")
    parser.add_argument("--write-ids", metavar="PATH", help="also write the IDs, one per line, to PATH")
    args = parser.parse_args()
    if args.n <= 0 or args.repeat <= 0:
        parser.error("N and --repeat must be positive")

    ids = [f"user-{i}" for i in range(args.n)]
    if args.write_ids:
        with open(args.write_ids, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(ids) + "\n")

    router = ABRouter(args.experiment, split=args.split)
    assign = router.assign
    best_cpu = best_wall = float("inf")
    treatment = 0
    for _ in range(args.repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        treatment = 0
        for user_id in ids:
            if assign(user_id) == "treatment":
                treatment += 1
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        best_wall = min(best_wall, time.perf_counter() - start_wall)

    json.dump({
        "python_ids_per_sec": round(args.n / best_cpu, 1),
        "wall_ids_per_sec": round(args.n / best_wall, 1),
        "n": args.n,
        "cpu_seconds": round(best_cpu, 4),
        "wall_seconds": round(best_wall, 4),
        "treatment": treatment,
        "experiment": args.experiment,
        "split": args.split,
        "python": platform.python_version(),
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
