#!/usr/bin/env python3
"""`bakeoff eval` against the same job written with the official `openai` Python client on asyncio.

The job: N requests x 2 variants, then every pair judged in both orders (MT-Bench's pairwise template,
verdict parsed from [[A]]/[[B]]/[[C]]): 4N model calls, against one mock upstream (`bakeoff mock-upstream`
with its quality and judge modes, no latency, no pacing), so what is measured is each tool's own cost per
call. Both run with the same concurrency (32 calls in flight), non-streamed answers, and no cache.

Measured in one run: wall time and peak RSS (/usr/bin/time) of each, median of --runs runs; the ratios are
what the issue's targets read (at least 5x faster, at most a third of the memory).

Usage: eval_bench.py --bin BAKEOFF --client-python PYTHON_WITH_OPENAI [--requests 10000] [--runs 1]
                     [--out out/bench] [--markdown BENCHMARKS.md]
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_md import write_section  # noqa: E402

CONCURRENCY = 32

CLIENT = r'''
import asyncio, json, sys
from openai import AsyncOpenAI

SYSTEM = ("Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question "
          "displayed below. You should choose the assistant that follows the user's instructions and answers the user's question better. "
          "Output your final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, "
          "and \"[[C]]\" for a tie.")

def user(question, a, b):
    return (f"[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{a}\n[The End of Assistant A's Answer]\n\n"
            f"[The Start of Assistant B's Answer]\n{b}\n[The End of Assistant B's Answer]")

def verdict(text):
    best = None
    for marker, v in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "C")):
        i = text.rfind(marker)
        if i >= 0 and (best is None or i > best[0]):
            best = (i, v)
    return best[1] if best else None

async def main(base_url, dataset, concurrency):
    client = AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=4)
    gate = asyncio.Semaphore(concurrency)
    async def call(model, messages, **extra):
        async with gate:
            r = await client.chat.completions.create(model=model, messages=messages, **extra)
            return r.choices[0].message.content
    async def one(item):
        messages = item["messages"]
        question = messages[-1]["content"]
        a, b = await asyncio.gather(call("support-v1", messages),
                                    call("support-v2", [{"role": "system", "content": "Answer in one sentence."}] + messages, temperature=0.3))
        j1, j2 = await asyncio.gather(
            call("judge", [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user(question, b, a)}], temperature=0),
            call("judge", [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user(question, a, b)}], temperature=0))
        return verdict(j1), verdict(j2)
    items = [json.loads(line) for line in open(dataset)]
    results = await asyncio.gather(*(one(i) for i in items))
    wins = sum(1 for x, y in results if x == "A" and y == "B")
    losses = sum(1 for x, y in results if x == "B" and y == "A")
    print(json.dumps({"requests": len(results), "wins": wins, "losses": losses}))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
'''


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v: (seconds, peak RSS in MB, stdout)."""
    start = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024
    return seconds, rss, p.stdout


def start_mock(bin_path, workdir):
    log = open(os.path.join(workdir, "mock.log"), "w")
    mock = subprocess.Popen([bin_path, "mock-upstream", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0",
                             "--tokens-per-second", "0", "--threads", "2", "--quality", "support-v1=0.6",
                             "--quality", "support-v2=0.75", "--judge-model", "judge"], stderr=log)
    for _ in range(400):
        text = open(log.name).read()
        m = re.search(r"listening on (http://\S+/v1)", text)
        if m:
            return mock, m.group(1)
        time.sleep(0.025)
    mock.kill()
    sys.exit("mock-upstream did not start:\n" + open(log.name).read())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--client-python", required=True, help="a Python with the openai package")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", default="out/bench")
    ap.add_argument("--markdown")
    ap.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "make bench"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="eval-bench-", dir=args.out)
    dataset = os.path.join(work, "requests.jsonl")
    subprocess.run([args.bin, "mock-dataset", "--size", str(args.requests), "--seed", "7", "--output", dataset], check=True)
    mock, base = start_mock(args.bin, work)
    try:
        config = {"experiments": [{"name": "support", "model": "support-bot", "variants": [
            {"name": "control", "weight": 0.5, "upstream": {"base_url": base, "model": "support-v1"}},
            {"name": "treatment", "weight": 0.5, "upstream": {"base_url": base, "model": "support-v2"},
             "system_prompt": "Answer in one sentence.", "parameters": {"temperature": 0.3}}],
            "eval": {"judge": {"upstream": {"base_url": base, "model": "judge"}},
                     "scorers": [{"type": "judge_pairwise", "name": "preference"}],
                     "concurrency": CONCURRENCY, "stream": False}}]}
        config_path = os.path.join(work, "bakeoff.json")
        json.dump(config, open(config_path, "w"))
        client_path = os.path.join(work, "client.py")
        open(client_path, "w").write(CLIENT)
        ours, theirs = [], []
        for _ in range(args.runs):
            s, rss, out = timed([args.bin, "eval", "--config", config_path, "--dataset", dataset, "--no-cache", "--format", "json"])
            report = json.loads(out)
            ours.append((s, rss, report))
            s, rss, out = timed([args.client_python, client_path, base, dataset, str(CONCURRENCY)])
            theirs.append((s, rss, json.loads(out)))
    finally:
        mock.terminate()
        mock.wait()
    calls = 4 * args.requests
    our_s = statistics.median(x[0] for x in ours)
    our_rss = statistics.median(x[1] for x in ours)
    their_s = statistics.median(x[0] for x in theirs)
    their_rss = statistics.median(x[1] for x in theirs)
    w = ours[0][2]["win_rates"][0]
    py = theirs[0][2]
    result = {
        "requests": args.requests, "calls": calls, "concurrency": CONCURRENCY, "runs": args.runs,
        "bakeoff_seconds": our_s, "bakeoff_rss_mb": our_rss, "openai_asyncio_seconds": their_s, "openai_asyncio_rss_mb": their_rss,
        "speedup": their_s / our_s, "memory_ratio": our_rss / their_rss,
        "bakeoff_wins_losses": [w["wins"], w["losses"]], "openai_wins_losses": [py["wins"], py["losses"]],
    }
    json.dump(result, open(os.path.join(args.out, "eval.json"), "w"), indent=1)
    print(json.dumps(result, indent=1))
    if args.markdown:
        date = datetime.date.today().isoformat()
        section = f"""## Offline eval: `bakeoff eval` vs the openai client on asyncio

`{args.command}` on {date} (scripts/bench/eval_bench.py). The job: {args.requests:,} requests x 2 variants, then each pair
judged in both orders: {calls:,} calls to one mock upstream without latency (`bakeoff mock-upstream`, its quality and
judge modes), {CONCURRENCY} calls in flight, no cache, answers not streamed. The same job written with the official
`openai` client (`AsyncOpenAI`, asyncio, a semaphore of {CONCURRENCY}) is the baseline, measured in the same run
against the same mock; median of {args.runs} run{'s' if args.runs != 1 else ''}, wall time and peak RSS by /usr/bin/time.

| | wall time | calls/s | peak RSS |
| --- | ---: | ---: | ---: |
| `bakeoff eval` | {our_s:.1f} s | {calls / our_s:,.0f} | {our_rss:.0f} MB |
| openai client, asyncio | {their_s:.1f} s | {calls / their_s:,.0f} | {their_rss:.0f} MB |
| ratio | **{their_s / our_s:.1f}x faster** | | **{our_rss / their_rss:.2f} of the memory** |

Both saw the same verdicts: bakeoff's wins/losses (requests won or lost in both orders) {w['wins']}/{w['losses']},
the client's {py['wins']}/{py['losses']}. The mock upstream shares the 2 cores with the tool measured, so both
times include the mock's own work; bakeoff's share of it is the larger.
"""
        write_section(args.markdown, section, "## Offline eval: `bakeoff eval` vs the openai client on asyncio")


if __name__ == "__main__":
    main()
