#!/usr/bin/env python3
"""Run a command several times under /usr/bin/time -v; report wall times and peak RSS as JSON.

    timeit_cmd.py [--runs 3] [--stdin FILE] [--stdout FILE] [--cpu 0] -- CMD ARGS...

Each run: `/usr/bin/time -v [taskset -c CPU] CMD ARGS < FILE > FILE`. Wall time is measured here with
time.perf_counter() around the whole process (start-up, reading and writing included); peak RSS is
/usr/bin/time's "Maximum resident set size" (KiB). Prints one JSON line:
{"runs": [{"wall_s", "max_rss_kb", "user_s", "sys_s"}, ...], "median_wall_s", "median_max_rss_kb",
"min_wall_s", "max_wall_s", "command": [...]}. Exits non-zero if any run fails.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import time


def field(text, name):
    m = re.search(rf"^\s*{re.escape(name)}: (.+)$", text, re.MULTILINE)
    if not m:
        raise SystemExit(f"timeit_cmd: no '{name}' in /usr/bin/time output:\n{text}")
    return m.group(1).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stdin", help="file to feed on stdin (default: /dev/null)")
    parser.add_argument("--stdout", help="file for the command's stdout (default: /dev/null)")
    parser.add_argument("--cpu", help="pin to this CPU list with taskset -c")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        parser.error("no command")
    full = ["/usr/bin/time", "-v"] + (["taskset", "-c", args.cpu] if args.cpu is not None else []) + cmd

    runs = []
    for _ in range(args.runs):
        with open(args.stdin or "/dev/null", "rb") as fin, open(args.stdout or "/dev/null", "wb") as fout:
            start = time.perf_counter()
            proc = subprocess.run(full, stdin=fin, stdout=fout, stderr=subprocess.PIPE)
            wall = time.perf_counter() - start
        err = proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            sys.stderr.write(err)
            raise SystemExit(f"timeit_cmd: command failed ({proc.returncode}): {' '.join(full)}")
        runs.append({"wall_s": round(wall, 4),
                     "max_rss_kb": int(field(err, "Maximum resident set size (kbytes)")),
                     "user_s": float(field(err, "User time (seconds)")),
                     "sys_s": float(field(err, "System time (seconds)"))})
    walls = [r["wall_s"] for r in runs]
    json.dump({"runs": runs, "median_wall_s": statistics.median(walls), "min_wall_s": min(walls),
               "max_wall_s": max(walls), "median_max_rss_kb": statistics.median(r["max_rss_kb"] for r in runs),
               "command": full}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
