#!/usr/bin/env python3
"""Gateway performance (issue 17): CPU per request, throughput, tails, cost by part, 10,000 streams.

    gateway_perf.py --bin .build/product/release/bakeoff [--quick] [--out out/bench] [--markdown BENCHMARKS.md]

Standard library only (plus /usr/bin/perf for the cost breakdown, skipped with a note when it fails).
What it measures, every gateway figure next to a baseline of the same run:

1. CPU per proxied request of the `bakeoff serve` process, all threads (/proc/PID/stat utime + stime) and per
   thread (/proc/PID/task/*/stat, grouped by the thread's name: bakeoff-loop-N, bakeoff-store, other), at
   saturation (closed loop, 8 connections) and at 40 requests/s (open loop); requests are counted by the
   gateway itself (the change of bakeoff_requests_total over the same window).
2. Closed-loop throughput with 8 connections: the gateway against the mock upstream directly, alternating.
3. Open-loop tails at 1,000 and 5,000 requests/s: gateway minus direct (same round, same rate) for p50, p99,
   p99.9 and max; several rounds, medians and the worst round.
4. The cost of each part: `perf record -e cpu-clock -g` on the gateway during a closed-loop run, samples
   classified by symbol (and call chain) into HTTP server, upstream client, proxy logic, store, allocation,
   kernel scheduling/epoll, kernel socket work, other.
5. Many concurrent streams (10,000, or as many as the open-files limit allows; 2,000 with --quick): mocks that
   stream 200 chunks over 10 s, the gateway in front, `bakeoff load --stream` in open loop; /metrics, RSS and
   the CPU of every process sampled every second. Errors, peak open streams, memory per open stream, chunk
   delay (bakeoff_stream_chunk_delay_seconds when the build has it), a 4 s perf profile of the gateway near the
   peak. When the count does not hold, smaller counts are tried (and, once, the count direct to a mock and the
   count at a sparse pace, 16 chunks over 30 s), and the bottleneck is described from the per-process,
   per-thread CPU and run-queue wait (/proc/PID/task/*/schedstat).

--phases picks parts (closed,low,tails,perf,streams); --help lists the durations and counts. The machine's
open-files limit is raised to its hard limit (and the hard limit to 65,536 where allowed) for every process.

Every process runs in its own session and is killed (its whole process group) at the end, also on failure,
SIGINT or SIGTERM. Writes OUT/gateway_perf.json (raw runs and the summary) and prints the Markdown section
"## Gateway performance (issue 17)"; with --markdown FILE it replaces that section in FILE (or appends it).
"""

import argparse
import http.client
import json
import os
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_md import publish  # noqa: E402
from gateway import Processes, machine_info, rotate  # noqa: E402

SECTION_TITLE = "## Gateway performance (issue 17)"
MODEL = "support-bot"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The issue's goals.
GOAL_RPS = 20000
GOAL_RATIO = 3.5
GOAL_OV_P99_MS = 0.5
GOAL_OV_P999_MS = 2.0
GOAL_OV_MAX_MS = 10.0
GOAL_STREAMS = 10000
GOAL_STREAM_MEM_KIB = 32
GOAL_CHUNK_P99_MS = 5.0

MOCK_INSTANT = ["--latency-ms", "0", "--jitter-ms", "0", "--tokens-per-second", "0", "--output-tokens", "20",
                "--threads", "1"]
STREAM_TPS, STREAM_TOKENS = 20, 200  # 200 chunks over 10 s
# The sparse pace, tried when the issue's pace cannot reach the count here: the same open streams with far fewer
# chunks and new streams a second (full run: 16 chunks over 30 s; --quick: 6 over 10 s).
SLOW_TPS = 0.5
SLOW_TOKENS, SLOW_TOKENS_QUICK = 16, 6


def stream_length(tps, tokens):
    """Seconds from a stream's first chunk to its last (the mock sends the first at once)."""
    return (tokens - 1) / tps

START = time.monotonic()


def log(msg):
    print(f"[gateway_perf {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ------------------------------------------------------------------------------------------ /proc
def read(path):
    with open(path) as fh:
        return fh.read()


def stat_fields(text):
    """Fields after `(comm)` of a /proc stat line: [0] = state (field 3), [11] utime, [12] stime, [36] processor."""
    return text[text.rindex(")") + 2:].split()


def proc_cpu(pid):
    """The process's user + system CPU seconds (all threads, /proc/PID/stat), or None when it is gone."""
    try:
        f = stat_fields(read(f"/proc/{pid}/stat"))
    except (OSError, ValueError):
        return None
    return (int(f[11]) + int(f[12])) / CLK_TCK


def threads_cpu(pid):
    """{tid: {"name", "cpu_s" (utime + stime), "run_ns", "wait_ns" (schedstat: on a core, waiting for one)}}
    of every thread of `pid`."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            st = read(f"/proc/{pid}/task/{tid}/stat")
            name = st[st.index("(") + 1:st.rindex(")")]
            f = stat_fields(st)
            entry = {"name": name, "cpu_s": (int(f[11]) + int(f[12])) / CLK_TCK, "core": int(f[36])}
            try:
                sched = read(f"/proc/{pid}/task/{tid}/schedstat").split()
                entry["run_ns"], entry["wait_ns"] = int(sched[0]), int(sched[1])
            except (OSError, ValueError, IndexError):
                pass
            out[int(tid)] = entry
        except (OSError, ValueError, IndexError):
            continue
    return out


def rss_kib(pid):
    try:
        for line in read(f"/proc/{pid}/status").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def machine_cpu():
    """Per core: (busy, total) jiffies from /proc/stat."""
    out = {}
    for line in read("/proc/stat").splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            parts = line.split()
            vals = [int(x) for x in parts[1:]]
            idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
            total = sum(vals[:8])
            out[parts[0]] = (total - idle, total)
    return out


def thread_delta(before, after):
    """Per thread, CPU seconds used between two threads_cpu() snapshots (threads born in between count from 0)."""
    out = {}
    for tid, a in after.items():
        b = before.get(tid, {"cpu_s": 0.0, "run_ns": 0, "wait_ns": 0})
        out[tid] = {"name": a["name"], "cpu_s": a["cpu_s"] - b["cpu_s"],
                    "run_s": (a.get("run_ns", 0) - b.get("run_ns", 0)) / 1e9 if "run_ns" in a else None,
                    "wait_s": (a.get("wait_ns", 0) - b.get("wait_ns", 0)) / 1e9 if "wait_ns" in a else None}
    return out


# ------------------------------------------------------------------------------------------ /metrics
def get_metrics(base, timeout=3.0):
    """The gateway's /metrics as {name: [(labels, value)]}, or None when it does not answer in time."""
    m = re.match(r"http://([^:/]+):(\d+)", base)
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        if resp.status != 200:
            return None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.setdefault(m.group(1), []).append((m.group(2) or "", value))
    return out


def metric_sum(metrics, name):
    if not metrics or name not in metrics:
        return None
    return sum(v for _, v in metrics[name])


def histogram(metrics, name):
    """[(upper bound, cumulative count)] of an unlabelled Prometheus histogram, or None."""
    rows = (metrics or {}).get(name + "_bucket")
    if not rows:
        return None
    out = []
    for labels, value in rows:
        m = re.search(r'le="([^"]+)"', labels)
        if m:
            out.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), value))
    return sorted(out)


def histogram_quantile(buckets, q):
    """Prometheus-style quantile (linear within the bucket) of cumulative buckets; also the bucket's bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None, None
    total = buckets[-1][1]
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound, bound
            if count == prev_count:
                return bound, bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count), bound
        prev_bound, prev_count = bound, count
    return None, None


# ------------------------------------------------------------------------------------------ processes
class Bench:
    def __init__(self, args, procs, workdir):
        self.args = args
        self.procs = procs
        self.workdir = workdir
        self.load_seq = 0

    def start_ready(self, name, argv):
        proc = self.procs.start(name, argv)
        url = self.procs.wait_for_line(name, proc, r"listening on (http://\S+/v1)", 30).group(1)
        return proc, url

    def start_mocks(self, prefix, mock_args):
        out = []
        for i in (1, 2):
            proc, url = self.start_ready(f"{prefix}{i}", [self.args.bin, "mock-upstream", "--port", "0"]
                                         + mock_args + ["--seed", str(i)])
            out.append((proc, url))
        return out

    def start_gateway(self, name, mock_urls):
        config = {
            # serve checks the config's listen address before --listen overrides it, and port 0 is refused there.
            "listen": "127.0.0.1:8080", "threads": self.args.gateway_threads,
            "store": {"path": os.path.join(self.workdir, name + ".db")},
            "experiments": [{"name": "bench", "model": MODEL, "split": 0.5, "variants": [
                {"name": "control", "upstream": {"base_url": mock_urls[0], "model": "mock"}},
                {"name": "treatment", "upstream": {"base_url": mock_urls[1], "model": "mock"}}]}]}
        path = os.path.join(self.workdir, name + ".json")
        with open(path, "w") as fh:
            json.dump(config, fh, indent=1)
        return self.start_ready(name, [self.args.bin, "serve", "--config", path, "--listen", "127.0.0.1:0"])

    def stop(self, proc):
        for name, p in list(self.procs.procs):
            if p is proc:
                self.procs.stop(name, p, grace=15)
                self.procs.procs.remove((name, p))

    def load(self, url, rate, concurrency, duration, warmup, stream=False, timeout=None, gateway=None,
             mocks=(), during=None):
        """Runs `bakeoff load` to completion; returns its JSON report plus the CPU the processes used.

        gateway: (pid, base url) of a gateway whose threads' CPU and request count are read around the run.
        mocks: pids of mock upstreams whose CPU is read around the run.
        during: called with the load's Popen while it runs (samplers, perf)."""
        argv = [self.args.bin, "load", "--url", url + "/chat/completions", "--rate", f"{rate:g}",
                "--concurrency", str(concurrency), "--duration", f"{duration:g}", "--warmup", f"{warmup:g}",
                "--users", str(self.args.users), "--model", MODEL, "--format", "json"]
        if stream:
            argv.append("--stream")
        if timeout:
            argv += ["--timeout", f"{timeout:g}"]
        self.load_seq += 1
        name = f"load{self.load_seq:03d}"
        g0 = m0 = None
        if gateway:
            m0 = get_metrics(gateway[1])
            g0 = threads_cpu(gateway[0])
        mk0 = [proc_cpu(p) for p in mocks]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = float(read("/proc/loadavg").split()[0])
        t0 = time.monotonic()
        proc = self.procs.start(name, argv)
        try:
            if during:
                during(proc)
            proc.wait()
        finally:
            if proc.poll() is None:
                self.stop(proc)
            self.procs.procs = [(n, p) for n, p in self.procs.procs if p is not proc]
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        rep = None
        try:
            with open(os.path.join(self.workdir, name + ".out")) as fh:
                rep = json.load(fh)
        except (OSError, json.JSONDecodeError):
            pass
        if rep is None:
            raise RuntimeError(f"bakeoff load failed ({proc.returncode}): {shlex.join(argv)}\n"
                               f"{self.procs.stderr_text(name)[-2000:]}")
        rep["exit_status"] = proc.returncode
        rep["wall_s"] = round(wall, 3)
        rep["loadavg_before"] = load_before
        rep["warmup_s"] = warmup
        rep["load_cpu_s"] = round((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime), 3)
        mk1 = [proc_cpu(p) for p in mocks]
        rep["mock_cpu_s"] = round(sum(b - a for a, b in zip(mk0, mk1) if a is not None and b is not None), 3)
        if gateway:
            g1 = threads_cpu(gateway[0])
            m1 = get_metrics(gateway[1])
            d = thread_delta(g0, g1)
            r0, r1 = metric_sum(m0, "bakeoff_requests_total"), metric_sum(m1, "bakeoff_requests_total")
            rep["gateway"] = {"requests": None if r0 is None or r1 is None else int(r1 - r0),
                              "cpu_s": round(sum(t["cpu_s"] for t in d.values()), 4),
                              "run_s": round(sum(t["run_s"] or 0 for t in d.values()), 4),
                              "wait_s": round(sum(t["wait_s"] or 0 for t in d.values()), 4),
                              "threads": {str(k): v for k, v in d.items()}}
        # Requests the load sent including its warm-up (for the load's and the mocks' CPU per request).
        rep["requests_with_warmup"] = (rep["requests"] * (duration + warmup) / duration) if duration else None
        return rep


# ------------------------------------------------------------------------------------------ thread groups
def thread_group(name, role=None):
    if name.startswith("bakeoff-loop"):
        return "loops"
    if name.startswith("bakeoff-store"):
        return "store"
    if role in ("loops", "store"):
        return role
    return "other"


GROUP_LABELS = {"loops": "loops (HTTP, upstream, assignment, logging hand-off)", "store": "store writer",
                "other": "other threads"}


def cpu_per_request(rep, roles, idle_rate=None, named=True):
    """µs per request of the gateway: total and per thread group, from one load report.

    A build without thread names: the store writer is the thread perf found writing the store; any other thread
    with at least 5% of the run's CPU counts as a request (loop) thread (which of the HTTP threads carries the
    connections changes from run to run)."""
    g = rep.get("gateway") or {}
    n = g.get("requests")
    if not n:
        return None
    groups = {"loops": 0.0, "store": 0.0, "other": 0.0}
    per_thread = {}
    for tid, t in g["threads"].items():
        role = roles.get(int(tid))
        if not named and role is None and t["cpu_s"] >= 0.05 * max(g["cpu_s"], 1e-9):
            role = "loops"
        grp = thread_group(t["name"], role)
        groups[grp] += t["cpu_s"]
        per_thread[tid] = {"name": t["name"], "group": grp, "us": t["cpu_s"] / n * 1e6,
                           "run_us": None if t["run_s"] is None else t["run_s"] / n * 1e6}
    out = {"requests": n, "total_us": g["cpu_s"] / n * 1e6, "run_total_us": g["run_s"] / n * 1e6,
           "groups_us": {k: v / n * 1e6 for k, v in groups.items()}, "threads": per_thread}
    if idle_rate is not None and rep.get("wall_s"):
        out["idle_us"] = idle_rate * rep["wall_s"] / n * 1e6
    return out


# ------------------------------------------------------------------------------------------ perf
SOCKET_CALLS = {"send", "sendto", "sendmsg", "recv", "recvfrom", "recvmsg", "read", "write", "readv", "writev",
                "accept", "accept4", "connect", "shutdown", "close", "socket", "setsockopt", "getsockopt",
                "getsockname", "getpeername", "sendfile", "splice", "sendmmsg", "recvmmsg"}
SCHED_CALLS = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "epoll_create1", "poll", "ppoll",
               "select", "pselect6", "futex", "nanosleep", "clock_nanosleep", "sched_yield", "eventfd2",
               "timerfd_settime"}
MEM_CALLS = {"mmap", "munmap", "brk", "madvise", "mprotect", "mremap"}
ALLOC_RE = re.compile(r"^(malloc|_int_malloc|_int_free|free|cfree|__libc_free|__libc_malloc|__libc_calloc|calloc|"
                      r"realloc|_int_realloc|__libc_realloc|malloc_consolidate|sysmalloc|unlink_chunk|tcache_\w+|"
                      r"__malloc_usable_size|malloc_usable_size|_mid_memalign|posix_memalign|aligned_alloc|"
                      r"swift_retain\w*|swift_release\w*|swift_allocObject|swift_deallocObject\w*|"
                      r"swift_slowAlloc|swift_slowDealloc|_swift_release_dealloc|swift_bridgeObjectRetain\w*|"
                      r"swift_bridgeObjectRelease\w*|swift_unknownObjectRetain\w*|swift_unknownObjectRelease\w*|"
                      r"swift_allocBox|swift_deallocBox|swift::RefCounts.*|swift_nonatomic_\w+)(@.*)?$")
SCHED_LIBC_RE = re.compile(r"^(epoll_wait|epoll_ctl|__poll|poll|ppoll|pthread_mutex_\w+|pthread_cond_\w+|"
                           r"___pthread_\w+|__pthread_\w+|pthread_\w+|__lll_\w+|__futex\w*|futex\w*|sem_\w+|"
                           r"nanosleep|__nanosleep|clock_nanosleep\w*|__clock_nanosleep\w*|sched_yield)(@.*)?$")
PROXY_PARTS = [
    ("proxy: feedback token (FeedbackTokenSigner, SHA256)", ("FeedbackToken", "SHA256")),
    ("proxy: assignment (ProxyDecision, Assigner, MD5)", ("ProxyDecision", "Routing", "Assigner", "10Allocation",
                                                           "BakeoffCore3MD5", "md5x4", "MD5")),
    ("proxy: request parsing (ClientRequest)", ("ClientRequest", "ProtocolJSON")),
    ("proxy: upstream reply (UpstreamReply, CompletionInfo, SSE)", ("UpstreamReply", "CompletionInfo",
                                                                     "ResponseInfo", "SSEParser")),
    ("proxy: metrics (GatewayMetrics)", ("GatewayMetrics",)),
]
CATEGORY_ORDER = [
    "HTTP server (libmicrohttpd, BakeoffHTTP server)",
    "upstream client (libcurl, UpstreamClient)",
    "proxy: request parsing (ClientRequest)",
    "proxy: assignment (ProxyDecision, Assigner, MD5)",
    "proxy: feedback token (FeedbackTokenSigner, SHA256)",
    "proxy: upstream reply (UpstreamReply, CompletionInfo, SSE)",
    "proxy: metrics (GatewayMetrics)",
    "proxy: JSON helpers, caller unknown",
    "proxy: other BakeoffGateway",
    "store: writer thread (SQLite, BakeoffStore)",
    "store: hand-off on request threads (event records, queue)",
    "memory allocation (malloc/free, swift_retain/release)",
    "kernel: memory (page faults, mmap)",
    "kernel: scheduling, epoll, futex; event loop",
    "kernel: TCP/socket work, caller not told",
    "kernel: other",
    "other (Swift stdlib/runtime, Foundation, libc, unresolved)",
]
HTTP = CATEGORY_ORDER[0]
UPSTREAM = CATEGORY_ORDER[1]
STORE = "store (SQLite, BakeoffStore, event records)"  # split into the two below by thread
STORE_WRITER = "store: writer thread (SQLite, BakeoffStore)"
STORE_HANDOFF = "store: hand-off on request threads (event records, queue)"
ALLOC = "memory allocation (malloc/free, swift_retain/release)"
KMEM = "kernel: memory (page faults, mmap)"
SCHED = "kernel: scheduling, epoll, futex; event loop"
KSOCK = "kernel: TCP/socket work, caller not told"
KOTHER = "kernel: other"
OTHER = "other (Swift stdlib/runtime, Foundation, libc, unresolved)"
JSON_UNKNOWN = "proxy: JSON helpers, caller unknown"
PROXY_OTHER = "proxy: other BakeoffGateway"


def classify_user_frame(sym, dso):
    """(kind, category) of one user-space frame: kind "owner" (a part of the gateway), "json" (a helper whose
    caller decides), "alloc", "sched", or "generic" (stdlib, libc, unknown: the caller decides)."""
    base = os.path.basename(dso)
    if "libmicrohttpd" in base or sym.startswith("bakeoff_mhd_") or sym.startswith("MHD_"):
        return "owner", HTTP
    if base.startswith(("libcurl", "libnghttp2", "libssl", "libcrypto", "libz.", "libbrotli", "libidn2",
                        "libpsl", "libssh", "librtmp", "libzstd")) or sym.startswith(("curl_", "Curl_", "ccurl_")):
        return "owner", UPSTREAM
    if "libsqlite3" in base or "BakeoffStore" in sym or "EventRecord" in sym or "EventLog" in sym:
        return "owner", STORE
    if ALLOC_RE.match(sym):
        return "alloc", ALLOC
    if SCHED_LIBC_RE.match(sym) or "EventLoop" in sym:
        return "sched", SCHED
    for label, keys in PROXY_PARTS:
        if any(k in sym for k in keys):
            return "owner", label
    if "BakeoffHTTP" in sym:
        if any(k in sym for k in ("UpstreamClient", "Transport", "BlockingCall")):
            return "owner", UPSTREAM
        return "owner", HTTP
    if "JSONCursor" in sym or "JSONString" in sym or "JSONWriter" in sym or "11BakeoffCore4JSON" in sym:
        return "json", JSON_UNKNOWN
    if "BakeoffGateway" in sym or "BakeoffTelemetry" in sym:
        return "owner", PROXY_OTHER
    return "generic", OTHER


def syscall_of(kernel_frames, user_leaf):
    """The system call a kernel sample belongs to (libc wrapper name, else the kernel's sys_ frame)."""
    if user_leaf:
        s = re.sub(r"@.*$", "", user_leaf)
        s = re.sub(r"^(__libc_|__GI___|___|__)", "", s)
        s = re.sub(r"(64|_nocancel)$", "", s)
        if s in SOCKET_CALLS or s in SCHED_CALLS or s in MEM_CALLS:
            return s
    for sym in reversed(kernel_frames):  # outermost first
        m = re.match(r"^(?:__x64_sys_|__se_sys_|__do_sys_|__sys_|ksys_|do_sys_)(\w+)$", sym)
        if m:
            return m.group(1)
        m = re.match(r"^do_(epoll_wait|epoll_ctl|epoll_pwait|futex)$", sym)
        if m:
            return m.group(1)
    return None


def classify_kernel(kernel_frames, user_leaf):
    call = syscall_of(kernel_frames, user_leaf)
    if call in SOCKET_CALLS:
        return KSOCK
    if call in SCHED_CALLS:
        return SCHED
    if call in MEM_CALLS:
        return KMEM
    text = " ".join(kernel_frames)
    if "page_fault" in text:
        return KMEM
    if re.search(r"\b(tcp_|inet_|sock_|ip_|__ip_|net_rx|__netif|skb|__dev_queue|loopback_xmit)", text):
        return KSOCK
    if re.search(r"schedule|finish_task_switch|epoll|ep_poll|futex|hrtimer|wake_up|exit_to_user_mode|"
                 r"irqentry_exit|tick_|update_curr|pick_next", text):
        return SCHED
    return KOTHER


def parse_perf_script(text):
    """Samples of `perf script -F tid,comm,period,ip,sym,dso`: [(tid, comm, period, [(sym, dso)] leaf first)]."""
    samples = []
    cur = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                samples.append(cur)
                cur = None
            continue
        if not line[0].isspace():
            if cur:
                samples.append(cur)
            m = re.match(r"^(.*?)\s+(\d+)\s+(\d+)\s*$", line)
            cur = (int(m.group(2)), m.group(1).strip(), int(m.group(3)), []) if m else None
            continue
        if cur is None:
            continue
        m = re.match(r"^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
            cur[3].append((sym, m.group(2)))
    if cur:
        samples.append(cur)
    return samples


def analyse_perf(samples, requests, names):
    """Classifies samples; returns shares, µs per request and the role of each thread (by name, else inferred)."""
    # First pass: each sample's leaf category and owner (the first gateway part up its call chain).
    per_tid = {}
    parsed = []
    for tid, comm, period, frames in samples:
        kernel = [s for s, d in frames if d.startswith("[kernel")]
        user = [(s, d) for s, d in frames if not d.startswith("[kernel") and d != "[unknown]"]
        user_leaf = user[0][0] if user else None
        leaf = owner = None
        json_seen = False
        if frames and frames[0][1].startswith("[kernel"):
            leaf = classify_kernel(kernel, user_leaf)
        for i, (sym, dso) in enumerate(user):
            kind, cat = classify_user_frame(sym, dso)
            if kind == "json":
                json_seen = True
                continue
            if leaf is None and i == 0:
                leaf = cat
            if kind == "owner":
                owner = cat
                break
        if leaf is None:
            leaf = JSON_UNKNOWN if json_seen else OTHER
        parsed.append((tid, comm, period, leaf, owner, json_seen))
        c = per_tid.setdefault(tid, {"all": 0})
        c["all"] += period
        if owner:
            c[owner] = c.get(owner, 0) + period
    total = sum(c["all"] for c in per_tid.values()) or 1
    named = any(n.startswith("bakeoff-") for n in names.values())
    roles, sock_roles = {}, {}
    for tid, c in per_tid.items():
        name = names.get(tid, "")
        owned = sum(v for k, v in c.items() if k != "all")
        request_side = sum(v for k, v in c.items() if k in (HTTP, UPSTREAM) or k.startswith("proxy"))
        if name.startswith("bakeoff-store"):
            roles[tid] = "store"
        elif name.startswith("bakeoff-loop"):
            roles[tid] = "loops"
        elif not named and owned:
            if c.get(STORE, 0) >= 0.5 * owned:
                roles[tid] = "store"
            elif request_side >= 0.5 * owned and c["all"] >= 0.02 * total:
                roles[tid] = "loops"
        h, u = c.get(HTTP, 0), c.get(UPSTREAM, 0)
        if h + u >= 20 * 500000 and max(h, u) >= 0.9 * (h + u):
            sock_roles[tid] = HTTP if h > u else UPSTREAM

    def final(cat, tid):
        if cat == STORE:
            return STORE_WRITER if roles.get(tid) == "store" else STORE_HANDOFF
        return cat

    # Second pass: the row each sample is counted in.
    rows, alloc_by_owner, by_thread = {}, {}, {}
    for tid, comm, period, leaf, owner, json_seen in parsed:
        role = roles.get(tid)
        if leaf == KSOCK:
            cat = owner if owner in (HTTP, UPSTREAM) else sock_roles.get(tid) or (STORE if role == "store" else KSOCK)
        elif leaf in (ALLOC, SCHED, KMEM):
            cat = leaf
            if leaf == ALLOC:
                who = final(owner or (STORE if role == "store" else JSON_UNKNOWN if json_seen else "unknown"), tid)
                alloc_by_owner[who] = alloc_by_owner.get(who, 0) + period
        elif leaf in (OTHER, KOTHER, JSON_UNKNOWN):
            cat = owner or (STORE if role == "store" else leaf)
        else:
            cat = leaf
        cat = final(cat, tid)
        rows[cat] = rows.get(cat, 0) + period
        grp = thread_group(names.get(tid, comm), role)
        by_thread[grp] = by_thread.get(grp, 0) + period
    ns_per_req = (lambda v: v / requests / 1000) if requests else (lambda v: None)
    table = [{"category": c, "share": rows[c] / total, "us_per_request": ns_per_req(rows[c]),
              "alloc_called_from_it_us": ns_per_req(alloc_by_owner.get(c, 0)) if c != ALLOC else None}
             for c in CATEGORY_ORDER + sorted(set(rows) - set(CATEGORY_ORDER)) if rows.get(c)]
    return {"samples": len(samples), "cpu_s": total / 1e9, "requests": requests,
            "us_per_request": ns_per_req(total), "rows": table,
            "alloc_by_caller_us": {k: ns_per_req(v) for k, v in sorted(alloc_by_owner.items(), key=lambda kv: -kv[1])},
            "threads": {k: v / total for k, v in by_thread.items()},
            "roles": {str(k): v for k, v in roles.items()},
            "thread_shares": {str(k): {"name": names.get(k, "?"), "role": roles.get(k), "share": c["all"] / total}
                              for k, c in per_tid.items()}}


def top_symbols(samples, n=12):
    counts = {}
    total = 0
    for tid, comm, period, frames in samples:
        total += period
        sym, dso = frames[0] if frames else ("[unknown]", "[unknown]")
        key = (sym, os.path.basename(dso))
        counts[key] = counts.get(key, 0) + period
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
    names = [s for (s, _), _ in top]
    demangled = names
    if shutil.which("swift-demangle"):
        try:
            out = subprocess.run(["swift-demangle", "--simplified"], input="\n".join(names), capture_output=True,
                                 text=True, timeout=30).stdout.splitlines()
            if len(out) == len(names):
                demangled = out
        except (OSError, subprocess.TimeoutExpired):
            pass
    return [{"symbol": d, "dso": dso, "share": v / total} for ((_, dso), v), d in zip(top, demangled)]


def perf_section(bench, gw_pid, gw_url, names):
    """perf record on the gateway during a closed-loop run; None plus a note when perf is not usable."""
    args = bench.args
    perf = shutil.which("perf") or "/usr/bin/perf"
    if not os.access(perf, os.X_OK):
        return {"skipped": "perf not found"}
    data = os.path.join(bench.workdir, "perf.data")
    p = bench.procs.start("perf", [perf, "record", "-e", "cpu-clock", "-F", "2000", "-g", "-p", str(gw_pid),
                                   "-o", data])
    time.sleep(1.0)
    if p.poll() is not None:
        return {"skipped": f"perf record exited ({p.returncode}): {bench.procs.stderr_text('perf')[-800:]}"}
    try:
        rep = bench.load(gw_url, 0, 8, args.perf_duration, 0.5, gateway=(gw_pid, gw_url))
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        bench.stop(p)
    if not os.path.exists(data) or os.path.getsize(data) == 0:
        return {"skipped": f"perf wrote no data: {bench.procs.stderr_text('perf')[-800:]}", "load": rep}
    t0 = time.monotonic()
    res = subprocess.run([perf, "script", "-i", data, "-F", "tid,comm,period,ip,sym,dso"], capture_output=True,
                         text=True, errors="replace")
    if res.returncode != 0 or not res.stdout.strip():
        return {"skipped": f"perf script failed ({res.returncode}): {res.stderr[-800:]}", "load": rep}
    samples = parse_perf_script(res.stdout)
    if not samples:
        return {"skipped": "perf recorded no samples", "load": rep}
    requests = (rep.get("gateway") or {}).get("requests")
    out = analyse_perf(samples, requests, names)
    out["top_symbols"] = top_symbols(samples)
    out["load"] = rep
    out["proc_cpu_us_per_request"] = (rep["gateway"]["cpu_s"] / requests * 1e6) if requests else None
    out["script_s"] = round(time.monotonic() - t0, 1)
    try:
        os.remove(data)
    except OSError:
        pass
    return out


# ------------------------------------------------------------------------------------------ streams
class Sampler(threading.Thread):
    """Every second: the gateway's /metrics gauges and RSS, and the CPU of every process and thread."""

    def __init__(self, gw_pid, gw_url, pids):
        super().__init__(daemon=True)
        self.gw_pid, self.gw_url, self.pids = gw_pid, gw_url, dict(pids)
        self.samples = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def add_pid(self, name, pid):
        self.pids[name] = pid

    def run(self):
        while not self.stop_event.is_set():
            t = time.monotonic()
            s = {"t": round(t - self.t0, 2), "machine": machine_cpu(), "procs": {}}
            s["fds"] = {}
            for name, pid in list(self.pids.items()):
                th = threads_cpu(pid)
                if th:
                    s["procs"][name] = {tid: (v.get("run_ns", v["cpu_s"] * 1e9), v.get("wait_ns", 0))
                                        for tid, v in th.items()}
                s["fds"][name] = fd_count(pid)
            if self.gw_pid:
                s["rss_kib"] = rss_kib(self.gw_pid)
            if self.gw_url:
                m = get_metrics(self.gw_url, timeout=2.0)
                s["metrics_ms"] = round((time.monotonic() - t) * 1000, 1)
                if m:
                    for k in ("bakeoff_http_connections_open", "bakeoff_upstream_calls_active",
                              "bakeoff_requests_in_flight", "bakeoff_buffered_bytes"):
                        s[k] = metric_sum(m, k)
            self.samples.append(s)
            self.stop_event.wait(max(0.05, 1.0 - (time.monotonic() - t)))

    def stop(self):
        self.stop_event.set()
        self.join(timeout=5)


def cpu_window(samples, i0, i1):
    """Between samples i0 and i1: % of one core per process and its busiest thread, machine busy %."""
    a, b = samples[i0], samples[i1]
    dt = b["t"] - a["t"]
    if dt <= 0:
        return None
    out = {"seconds": round(dt, 1), "procs": {}}
    for name, th in b["procs"].items():
        before = a["procs"].get(name, {})
        per = {tid: (run - before.get(tid, (0, 0))[0]) / 1e9 / dt * 100 for tid, (run, _) in th.items()}
        wait = {tid: (w - before.get(tid, (0, 0))[1]) / 1e9 / dt * 100 for tid, (_, w) in th.items()}
        if per:
            top = max(per, key=per.get)
            out["procs"][name] = {"pct": round(sum(per.values()), 1), "busiest_thread_pct": round(per[top], 1),
                                  "busiest_thread_wait_pct": round(wait[top], 1),
                                  "wait_pct": round(sum(wait.values()), 1),
                                  "threads_over_50pct": sum(1 for v in per.values() if v > 50)}
    busy = tot = 0
    cores = {}
    for core, (bb, bt) in b["machine"].items():
        ab, at = a["machine"].get(core, (0, 0))
        busy += bb - ab
        tot += bt - at
        cores[core] = round((bb - ab) / max(1, bt - at) * 100, 1)
    ncores = len(b["machine"]) or 1
    out["machine_busy_pct"] = round(busy / max(1, tot) * 100 * ncores, 1)  # of ncores x 100
    out["cores_busy_pct"] = cores
    ours = sum(p["pct"] for p in out["procs"].values())
    out["others_pct"] = round(max(0.0, out["machine_busy_pct"] - ours), 1)
    return out


def mock_stream_args(tps, tokens):
    return ["--latency-ms", "0", "--jitter-ms", "0", "--tokens-per-second", str(tps), "--output-tokens", str(tokens),
            "--threads", "1"]


def pace_label(a):
    return f"{a['tokens']} chunks / {round(stream_length(a['tps'], a['tokens'])):g} s"


def stream_attempt(bench, n, via_gateway, fd_cap, tps=STREAM_TPS, tokens=STREAM_TOKENS, profile=False):
    """One run of n streams (each `tokens` chunks at `tps` a second), started at n / stream length a second for
    --stream-duration s so that they overlap to n; fresh mocks (and gateway) each time."""
    args = bench.args
    length = stream_length(tps, tokens)
    # Long enough to ramp up to n (one stream's length) and to stay there as long as at the issue's pace.
    duration = args.stream_duration - stream_length(STREAM_TPS, STREAM_TOKENS) + length
    rate = round(n / length)
    tag = f"s{n}{'g' if via_gateway else 'd'}{tps}"
    mocks = bench.start_mocks(f"{tag}-mock", mock_stream_args(tps, tokens))
    mock_urls = [u for _, u in mocks]
    gw = gw_url = None
    out = {"streams": n, "via": "gateway" if via_gateway else "direct", "rate": rate, "tps": tps, "tokens": tokens,
           "duration_s": round(duration, 2), "length_s": length, "concurrency_cap": fd_cap,
           "mock": " ".join(mock_stream_args(tps, tokens))}
    try:
        if via_gateway:
            gw, gw_url = bench.start_gateway(f"{tag}-gateway", mock_urls)
            # A short non-streaming warm-up (lazy set-up, the store), then the idle RSS.
            bench.load(gw_url, 200, 64, 1, 0)
            time.sleep(1.0)
            out["rss_idle_kib"] = rss_kib(gw.pid)
            m0 = get_metrics(gw_url)
            out["has_chunk_histogram"] = histogram(m0, "bakeoff_stream_chunk_delay_seconds") is not None
            cpu0 = proc_cpu(gw.pid)
        target_url = gw_url or mock_urls[0]
        pids = {f"mock{i + 1}": p.pid for i, (p, _) in enumerate(mocks)}
        if gw:
            pids["gateway"] = gw.pid
        idle_fds = {name: fd_count(pid) for name, pid in pids.items()}
        out["idle_fds"] = idle_fds
        sampler = Sampler(gw.pid if gw else None, (gw_url or "").rsplit("/v1", 1)[0] or None, pids)
        sampler.start()

        perf_data = os.path.join(bench.workdir, f"{tag}-perf.data")

        def during(load_proc):
            sampler.add_pid("load", load_proc.pid)
            if profile and gw:
                # A profile of the gateway near the peak: from 90% of a stream's length, for 4 s.
                deadline = time.monotonic() + 0.9 * length
                while time.monotonic() < deadline and load_proc.poll() is None:
                    time.sleep(0.2)
                if load_proc.poll() is None:
                    out["perf_t"] = round(time.monotonic() - sampler.t0, 1)
                    recent = [smp for smp in sampler.samples[-3:]
                              if smp.get("bakeoff_upstream_calls_active") is not None]
                    out["perf_open_streams"] = recent[-1]["bakeoff_upstream_calls_active"] if recent else None
                    out["perf"] = stream_profile(bench, gw.pid, perf_data, tag)

        t0 = time.monotonic()
        try:
            rep = bench.load(target_url, rate, fd_cap, round(duration, 2), 0, stream=True,
                             timeout=max(args.stream_timeout, length + 30), during=during)
        finally:
            sampler.stop()
        out["wall_s"] = round(time.monotonic() - t0, 1)
        out["load"] = rep
        samples = sampler.samples
        out["samples"] = [{k: v for k, v in smp.items() if k not in ("procs", "machine")} for smp in samples]
        if gw:
            m1 = get_metrics(gw_url)
            out["gateway_cpu_s"] = round(proc_cpu(gw.pid) - cpu0, 2)
            out["rss_after_kib"] = rss_kib(gw.pid)
            h0 = histogram(m0, "bakeoff_stream_chunk_delay_seconds")
            h1 = histogram(m1, "bakeoff_stream_chunk_delay_seconds")
            if h1:
                before = dict(h0 or [])
                delta = [(b, c - before.get(b, 0)) for b, c in h1]
                out["chunk_delay_buckets"] = [[("+Inf" if b == float("inf") else b), c] for b, c in delta]
                for q, qn in ((0.5, "p50"), (0.99, "p99"), (0.999, "p999")):
                    v, bound = histogram_quantile(delta, q)
                    out[f"chunk_delay_{qn}_ms"] = None if v is None else v * 1000
                    out[f"chunk_delay_{qn}_bucket_ms"] = None if bound is None else bound * 1000
                out["chunks"] = delta[-1][1] if delta else 0
            out["gateway_stderr_tail"] = bench.procs.stderr_text(f"{tag}-gateway")[-1500:]
        if gw and m0 and m1:
            t0_, t1_ = metric_sum(m0, "bakeoff_output_tokens_total"), metric_sum(m1, "bakeoff_output_tokens_total")
            if t0_ is not None and t1_ is not None:
                out["gateway_output_tokens"] = int(t1_ - t0_)
        peak_and_cpu(out, samples, idle_fds, via_gateway, length, duration)
        lat = rep.get("latency_ms") or {}
        out["held"] = (rep["errors"] == 0 and rep["skipped"] == 0 and rep["completed"] > 0
                       and (out.get("peak_streams") or 0) >= 0.9 * n)
        out["kept_pace"] = lat.get("p99") is not None and lat["p99"] <= 1.5 * length * 1000
        out["bottleneck"] = describe_bottleneck(out)
    finally:
        if gw:
            bench.stop(gw)
        for p, _ in mocks:
            bench.stop(p)
        for name in os.listdir(bench.workdir):
            if name.startswith(f"{tag}-gateway.db"):
                os.remove(os.path.join(bench.workdir, name))
    return out


def stream_profile(bench, gw_pid, data, tag):
    """perf record of the gateway for 4 s (while streams are open); its classified samples, or why not."""
    perf = shutil.which("perf") or "/usr/bin/perf"
    if not os.access(perf, os.X_OK):
        return {"skipped": "perf not found"}
    names = {tid: t["name"] for tid, t in threads_cpu(gw_pid).items()}
    p = bench.procs.start(f"{tag}-perf", [perf, "record", "-e", "cpu-clock", "-F", "2000", "-g", "-p", str(gw_pid),
                                          "-o", data, "--", "sleep", "4"])
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    bench.stop(p)
    if not os.path.exists(data) or os.path.getsize(data) == 0:
        return {"skipped": f"perf wrote no data: {bench.procs.stderr_text(tag + '-perf')[-500:]}"}
    res = subprocess.run([perf, "script", "-i", data, "-F", "tid,comm,period,ip,sym,dso"], capture_output=True,
                         text=True, errors="replace")
    try:
        os.remove(data)
    except OSError:
        pass
    samples = parse_perf_script(res.stdout) if res.returncode == 0 else []
    if not samples:
        return {"skipped": f"perf script failed ({res.returncode}): {res.stderr[-500:]}"}
    out = analyse_perf(samples, None, names)
    out["cores"] = out["cpu_s"] / 4.0
    out["top_symbols"] = top_symbols(samples, 8)
    return out


def peak_and_cpu(out, samples, idle_fds, via_gateway, length, duration):
    """The peak of open streams, the RSS there, and the CPU of every process at the plateau and per chunk.

    Open streams per sample: the gateway's upstream calls in progress (/metrics); when /metrics did not answer in
    time, estimated from descriptors: upstream connections = the mocks' sockets opened since idle, client
    connections = the gateway's new descriptors minus those, streams = the smaller (idle kept-alive connections
    make it an overestimate). Direct: the mock's sockets opened since idle."""
    key = "bakeoff_upstream_calls_active"

    def estimate(smp):
        f = smp.get("fds") or {}
        try:
            upstream = sum(f[m] - idle_fds[m] for m in ("mock1", "mock2") if m in idle_fds)
            if not via_gateway:
                return max(0, f["mock1"] - idle_fds["mock1"])
            client = f["gateway"] - idle_fds["gateway"] - upstream
            return max(0, min(client, upstream))
        except (KeyError, TypeError):
            return None

    metric = [(i, smp[key]) for i, smp in enumerate(samples) if via_gateway and smp.get(key) is not None]
    est = [(i, e) for i, e in ((i, estimate(smp)) for i, smp in enumerate(samples)) if e is not None]
    plateau = []
    best = None
    if metric:
        best = max(metric, key=lambda x: x[1]) + ("metrics",)
    if est:
        e = max(est, key=lambda x: x[1])
        if best is None or (not via_gateway) or e[1] > 1.05 * best[1] and any(
                samples[i].get(key) is None for i, _ in est if _ >= 0.95 * e[1]):
            if best is None or e[1] > best[1]:
                best = e + ("descriptors",)
    if best:
        ipk, npk, src = best
        pk = samples[ipk]
        out["peak_streams"] = int(round(npk))
        out["peak_source"] = src
        out["peak_t"] = pk["t"]
        if metric:
            out["peak_streams_metrics"] = int(max(v for _, v in metric))
            out["peak_connections"] = int(max(samples[i].get("bakeoff_http_connections_open") or 0 for i, _ in metric))
        if est:
            out["peak_streams_descriptors"] = int(max(v for _, v in est))
        out["metrics_missed"] = sum(1 for smp in samples if smp.get(key) is None) if via_gateway else 0
        if via_gateway:
            out["rss_at_peak_kib"] = pk.get("rss_kib")
            out["rss_max_kib"] = max((smp.get("rss_kib") or 0) for smp in samples)
            if out.get("rss_idle_kib") and pk.get("rss_kib") and npk > 0:
                out["kib_per_stream"] = (pk["rss_kib"] - out["rss_idle_kib"]) / npk
                out["kib_per_stream_max_rss"] = (out["rss_max_kib"] - out["rss_idle_kib"]) / npk
        series = dict(est)
        series.update(dict(metric))
        plateau = sorted(i for i, v in series.items() if v >= 0.8 * npk)
    if not plateau:
        plateau = [i for i, smp in enumerate(samples) if length <= smp["t"] <= duration] or list(range(len(samples)))
    if len(plateau) >= 2 and plateau[-1] > plateau[0]:
        out["plateau_cpu"] = cpu_window(samples, plateau[0], plateau[-1])
    if len(samples) >= 2:
        whole = cpu_window(samples, 0, len(samples) - 1)
        if whole and whole["seconds"]:
            # The load generator's own CPU from its rusage (its last /proc sample may miss its end).
            whole["procs"]["load"] = {"pct": round(out["load"]["load_cpu_s"] / whole["seconds"] * 100, 1),
                                      **{k: v for k, v in whole["procs"].get("load", {}).items() if k != "pct"}}
        out["whole_cpu"] = whole
        # Chunks streamed: the tokens the gateway counted (one a chunk), else those of the completed streams.
        # Not per chunk or stream when more than 1% failed (the work of a failed stream is not known).
        chunks = out.get("gateway_output_tokens") or out["load"]["completed"] * out["tokens"]
        out["chunks_streamed"] = chunks
        if out["load"]["errors"] > 0.01 * max(1, out["load"]["requests"]):
            whole = None
        if whole and chunks:
            out["us_per_chunk"] = {name: p["pct"] / 100 * whole["seconds"] / chunks * 1e6
                                   for name, p in whole["procs"].items()}
        if whole and out["load"]["completed"]:
            out["us_per_stream"] = {name: p["pct"] / 100 * whole["seconds"] / out["load"]["completed"] * 1e6
                                    for name, p in whole["procs"].items()}


def describe_bottleneck(att):
    cpu = att.get("plateau_cpu") or att.get("whole_cpu")
    if not cpu:
        return "no CPU samples"
    parts = []
    labels = {"gateway": "gateway", "load": "load generator", "mock1": "mock 1", "mock2": "mock 2"}
    for name in ("load", "gateway", "mock1", "mock2"):
        p = cpu["procs"].get(name)
        if p:
            parts.append(f"{labels[name]} {p['pct']:.0f}% (busiest thread {p['busiest_thread_pct']:.0f}%, waiting "
                         f"for a core {p.get('busiest_thread_wait_pct', 0):.0f}%)")
    text = (f"cores {cpu['machine_busy_pct']:.0f}% busy of {100 * len(cpu['cores_busy_pct'])}% "
            f"({', '.join(f'{v:.0f}%' for v in cpu['cores_busy_pct'].values())}): " + ", ".join(parts)
            + f", other jobs {cpu['others_pct']:.0f}%")
    sat = [labels[n] for n, p in cpu["procs"].items() if p["busiest_thread_pct"] >= 90]
    if sat:
        text += f"; a thread of the {', '.join(sat)} is at ≥ 90% of a core"
    for key, what in (("us_per_stream", "stream"), ("us_per_chunk", "chunk")):
        upc = att.get(key)
        if upc:
            mocks = sum(v for k, v in upc.items() if k.startswith("mock"))
            text += (f"{'.' if what == 'stream' else ';'} CPU per {what}: mocks {f_us(mocks)}, " + ", ".join(
                f"{labels[k]} {f_us(v)}" for k, v in upc.items() if not k.startswith("mock")))
    return text


def measure_streams(args, bench, result, limits):
    """5: many concurrent streams at the issue's pace (200 chunks over 10 s): the largest count first, then
    smaller ones until one holds; when the largest did not hold, once direct to a mock (without the gateway),
    and the largest count again at a tenth of the pace (20 chunks over 10 s) for the memory per stream."""
    soft = limits["soft"]
    # The gateway holds a client and an upstream connection per stream, plus a few hundred of its own.
    fd_cap = max(100, (soft - 400) // 2)
    target = args.streams
    capped = target > fd_cap * 0.97
    if capped:
        target = int(fd_cap * 0.97) // 100 * 100
    st = result["streams"] = {"requested": args.streams, "target": target, "fd_cap": fd_cap,
                              "capped_by_open_files": capped, "attempts": []}

    def attempt(n, via_gateway=True, tps=STREAM_TPS, tokens=STREAM_TOKENS, profile=False):
        log(f"streams: {n:,} {'through the gateway' if via_gateway else 'direct to a mock'}, {tokens} chunks over "
            f"{stream_length(tps, tokens):g} s")
        a = stream_attempt(bench, n, via_gateway, fd_cap, tps, tokens, profile=profile and via_gateway)
        st["attempts"].append(a)
        lat = a["load"].get("latency_ms") or {}
        log(f"  -> {'held' if a['held'] else 'NOT held'}: errors {a['load']['errors']} skipped {a['load']['skipped']} "
            f"peak {a.get('peak_streams')} ({a.get('peak_source')}), RSS {a.get('rss_idle_kib')} -> "
            f"{a.get('rss_at_peak_kib')} KiB ({a.get('kib_per_stream') or float('nan'):.1f} KiB/stream), length p50 "
            f"{lat.get('p50') or float('nan'):.0f} ms; {a['bottleneck']}")
        return a

    n = target
    first = None
    for i in range(max(1, args.stream_attempts)):
        a = attempt(n, profile=i == 0 and args.stream_perf)
        first = first or a
        if a["held"]:
            break
        if i == 0 and args.stream_direct:
            attempt(n, via_gateway=False)
        # Next: a little under what was reached, or fewer when it failed with errors at a full peak.
        reached = a.get("peak_streams") or 0
        nxt = int(min(0.8 * reached if reached < 0.9 * n else 0.6 * n, 0.7 * n)) // 100 * 100
        if nxt < 100 or time.monotonic() - START > args.stream_budget:
            break
        n = nxt
    if not first["held"] and args.slow_pace:
        attempt(target, tps=SLOW_TPS, tokens=SLOW_TOKENS_QUICK if args.quick else SLOW_TOKENS, profile=args.stream_perf)


# ------------------------------------------------------------------------------------------ main
def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 65536) if hard != resource.RLIM_INFINITY else hard
    note = None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError) as e:
        note = f"the hard limit {hard} could not be raised ({e})"
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    soft2, hard2 = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft_before": soft, "hard_before": hard, "soft": soft2, "hard": hard2, "note": note}


def versions(args):
    def sh(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    st = os.stat(args.bin)
    return {"bakeoff_commit": sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "unknown",
            "bakeoff_dirty": bool(sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])),
            "binary": args.bin, "binary_sha256": sh(["sha256sum", args.bin]).split(" ")[0][:16],
            "binary_mtime_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
            "perf": sh(["perf", "--version"])}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.environ.get("BAKEOFF_BIN", ".build/product/release/bakeoff"),
                   help="the bakeoff binary (BAKEOFF_BIN)")
    p.add_argument("--out", default=os.environ.get("BENCH_OUT", "out/bench"))
    p.add_argument("--markdown", help="write the section into this Markdown file")
    p.add_argument("--quick", action="store_true", help="short runs (about 2-3 minutes)")
    p.add_argument("--rounds", type=int, help="rounds of the closed-loop and tail runs (3; quick 2)")
    p.add_argument("--duration", type=float, help="measured seconds of a closed-loop or tail run (10; quick 3)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before each run (2; quick 1)")
    p.add_argument("--low-rate-duration", type=float, help="seconds of the low-rate run (25; quick 10)")
    p.add_argument("--perf-duration", type=float, help="seconds of the perf run (10; quick 4)")
    p.add_argument("--streams", type=int, help="concurrent streams to reach (10000; quick 2000)")
    p.add_argument("--stream-duration", type=float,
                   help="seconds new streams are sent for at the issue's pace: a stream's 10 s + the plateau "
                        "(15; quick 12)")
    p.add_argument("--stream-timeout", type=float, default=40, help="per-stream timeout of the load (40 s)")
    p.add_argument("--stream-attempts", type=int, help="most stream counts tried at the full pace (4; quick 2)")
    p.add_argument("--stream-budget", type=float, default=660,
                   help="no further smaller stream count is tried after this many seconds of the whole run")
    p.add_argument("--no-stream-direct", dest="stream_direct", action="store_false",
                   help="skip the run direct to a mock when the largest stream count did not hold (quick skips it)")
    p.add_argument("--no-stream-perf", dest="stream_perf", action="store_false",
                   help="skip the 4 s perf profiles of the gateway near the peak of the first and the sparse attempt")
    p.add_argument("--no-slow-pace", dest="slow_pace", action="store_false",
                   help="skip the run at a sparse pace (16 chunks over 30 s) when the largest stream count did "
                        "not hold")
    p.add_argument("--rates", default="1000,5000", help="open-loop rates of the tail runs")
    p.add_argument("--low-rate", type=int, default=40, help="the low open-loop rate for CPU per request")
    p.add_argument("--gateway-threads", type=int, default=2)
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--phases", default="closed,low,tails,perf,streams",
                   help="which parts to run (closed: throughput and CPU at saturation; low: CPU at --low-rate; "
                        "tails; perf; streams)")
    p.add_argument("--command", help="the command written into the Markdown (default: this one)")
    args = p.parse_args()
    q = args.quick
    for name, full, quick in (("rounds", 3, 2), ("duration", 10, 3), ("warmup", 2, 1), ("low_rate_duration", 25, 10),
                              ("perf_duration", 10, 4), ("streams", GOAL_STREAMS, 2000), ("stream_duration", 15, 12),
                              ("stream_attempts", 4, 2)):
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    args.rates = [int(x) for x in args.rates.split(",") if x.strip()]
    if q:
        args.stream_direct = False
    args.phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    unknown = args.phases - {"closed", "low", "tails", "perf", "streams"}
    if unknown:
        raise SystemExit(f"gateway_perf.py: unknown phases {sorted(unknown)}")
    if not args.command:
        args.command = "python3 scripts/bench/gateway_perf.py " + shlex.join(sys.argv[1:])
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        raise SystemExit(f"gateway_perf.py: {args.bin} not found (make build)")

    os.makedirs(args.out, exist_ok=True)
    workdir = os.path.join(os.path.abspath(args.out), "gateway_perf")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    procs = Processes(workdir)

    def on_signal(signum, _frame):
        raise SystemExit(f"gateway_perf.py: signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        result = measure(args, Bench(args, procs, workdir))
    finally:
        procs.stop_all()
        for name in os.listdir(workdir):
            if ".db" in name:
                os.remove(os.path.join(workdir, name))
    publish(result, args.out, "gateway_perf", render(result), args.markdown, SECTION_TITLE, log)


def measure(args, bench):
    limits = raise_nofile()
    result = {"date": time.strftime("%Y-%m-%d", time.gmtime()),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": args.command, "quick": args.quick, "open_files": limits,
              "settings": {k: getattr(args, k) for k in ("rounds", "duration", "warmup", "low_rate_duration",
                                                         "perf_duration", "streams", "stream_duration",
                                                         "stream_timeout", "stream_attempts", "rates", "low_rate",
                                                         "gateway_threads", "users")},
              "phases": sorted(args.phases), "out": args.out,
              "mock": " ".join(MOCK_INSTANT), "mock_stream": " ".join(mock_stream_args(STREAM_TPS, STREAM_TOKENS)),
              "machine": machine_info(), "versions": versions(args)}
    log(f"machine: {result['machine']['nproc']} cores, load {result['machine']['loadavg_start']}; open files "
        f"{limits['soft']}/{limits['hard']}{' (' + limits['note'] + ')' if limits['note'] else ''}")
    runs = []
    result["runs"] = runs
    phases = args.phases
    if phases & {"closed", "low", "tails", "perf"}:
        measure_requests(args, bench, result, runs, phases)
    if "streams" in phases:
        measure_streams(args, bench, result, limits)
    result["summary"] = analyse(result, runs)
    result["machine"]["loadavg_end"] = read("/proc/loadavg").split()[:3]
    result["elapsed_s"] = round(time.monotonic() - START, 1)
    return result


def measure_requests(args, bench, result, runs, phases):
    """1-4: one gateway in front of two mocks that answer at once."""
    mocks = bench.start_mocks("mock", MOCK_INSTANT)
    mock_pids = [pr.pid for pr, _ in mocks]
    gw, gw_url = bench.start_gateway("gateway", [u for _, u in mocks])
    gw_base = gw_url.rsplit("/v1", 1)[0]
    urls = {"direct": mocks[0][1], "gateway": gw_url}
    log(f"mocks {mocks[0][1]} {mocks[1][1]}, gateway {gw_url} (pid {gw.pid})")
    for path in ("direct", "gateway"):  # first connections, lazy set-up; not measured
        bench.load(urls[path], 200, 64, 1, 0)

    def one(key, path, rate, conc, duration, rnd, warmup=None):
        for name, pr in [("gateway", gw)] + [(f"mock{i + 1}", m) for i, (m, _) in enumerate(mocks)]:
            if pr.poll() is not None:
                raise RuntimeError(f"{name} exited ({pr.returncode}):\n{bench.procs.stderr_text(name)[-3000:]}")
        rep = bench.load(urls[path], rate, conc, duration, args.warmup if warmup is None else warmup,
                         gateway=(gw.pid, gw_base) if path == "gateway" else None, mocks=mock_pids)
        rep.update({"config": key, "path": path, "round": rnd})
        runs.append(rep)
        lat = rep["latency_ms"] or {}
        g = rep.get("gateway") or {}
        cpu = f"  gw {g['cpu_s'] / g['requests'] * 1e6:6.1f} µs/req" if g.get("requests") else ""
        log(f"round {rnd} {key:18s} rate {rep['rate']:9.1f}  p50 {lat.get('p50', float('nan')):7.3f}  "
            f"p99 {lat.get('p99', float('nan')):7.3f}  p99.9 {lat.get('p999', float('nan')):7.3f}  "
            f"max {lat.get('max', float('nan')):7.2f} ms  err {rep['errors']} skip {rep['skipped']}{cpu}")
        time.sleep(0.5)
        return rep

    names = {tid: t["name"] for tid, t in threads_cpu(gw.pid).items()}

    # -------------------------------------------------------------- 1a, 2: closed loop, 8 connections
    if "closed" in phases:
        closed = [("direct/closed8", "direct"), ("gateway/closed8", "gateway")]
        for rnd in range(args.rounds):
            for key, path in rotate(closed, rnd):
                one(key, path, 0, 8, args.duration, rnd)

    # -------------------------------------------------------------- 1b: idle, then 40 requests/s
    if "low" in phases:
        time.sleep(0.5)
        idle_s = 3 if args.quick else 5
        t0, c0 = time.monotonic(), threads_cpu(gw.pid)
        time.sleep(idle_s)
        idle = thread_delta(c0, threads_cpu(gw.pid))
        idle_wall = time.monotonic() - t0
        result["idle"] = {"seconds": round(idle_wall, 2), "cpu_s": round(sum(t["cpu_s"] for t in idle.values()), 4),
                          "run_s": round(sum(t["run_s"] or 0 for t in idle.values()), 4),
                          "threads": {str(k): v for k, v in idle.items()}}
        idle_rate = sum(t["run_s"] or t["cpu_s"] for t in idle.values()) / idle_wall
        result["idle"]["cpu_ms_per_s"] = round(idle_rate * 1000, 3)
        log(f"idle gateway: {idle_rate * 1000:.2f} ms CPU per second")
        one(f"gateway@{args.low_rate}", "gateway", args.low_rate, 512, args.low_rate_duration, 0, warmup=2)

    # -------------------------------------------------------------- 3: open-loop tails
    if "tails" in phases:
        opened = [(f"{path}@{r}", path, r) for r in args.rates for path in ("direct", "gateway")]
        for rnd in range(args.rounds):
            for key, path, rate in rotate(opened, rnd):
                one(key, path, rate, 512, args.duration, rnd)

    # -------------------------------------------------------------- 4: perf
    names.update({tid: t["name"] for tid, t in threads_cpu(gw.pid).items()})
    if "perf" in phases:
        try:
            result["perf"] = perf_section(bench, gw.pid, gw_url, names)
        except RuntimeError as e:
            result["perf"] = {"skipped": str(e)[-800:]}
        if result["perf"].get("skipped"):
            log(f"perf: skipped: {result['perf']['skipped']}")
        else:
            log(f"perf: {result['perf']['samples']} samples, {result['perf']['us_per_request']:.1f} µs/request "
                f"({result['perf']['script_s']} s to read)")
    roles = {int(k): v for k, v in (result.get("perf", {}).get("roles") or {}).items()}
    result["gateway_threads"] = {str(tid): {"name": n, "role": roles.get(tid)} for tid, n in names.items()}
    result["threads_named"] = any(n.startswith("bakeoff-") for n in names.values())

    # Stop the processes of 1-4 before the streams (they take the cores otherwise).
    bench.stop(gw)
    result["gateway_stderr_tail"] = bench.procs.stderr_text("gateway")[-1500:]
    for pr, _ in mocks:
        bench.stop(pr)


# ------------------------------------------------------------------------------------------ analysis
def analyse(result, runs):
    by = {}
    for r in runs:
        by.setdefault(r["config"], []).append(r)
    roles = {int(k): v["role"] for k, v in result.get("gateway_threads", {}).items() if v.get("role")}
    idle_rate = result["idle"]["cpu_ms_per_s"] / 1000 if result.get("idle") else None
    s = {}

    def lat_med(key, q):
        return med([(r["latency_ms"] or {}).get(q) for r in by.get(key, [])])

    # CPU per request at saturation (the gateway's closed-loop runs) and at the low rate.
    def cpu_summary(key):
        per = [cpu_per_request(r, roles, idle_rate, result.get("threads_named", True)) for r in by.get(key, [])]
        per = [x for x in per if x]
        if not per:
            return None
        out = {"rounds": len(per), "requests": sum(x["requests"] for x in per),
               "total_us": med([x["total_us"] for x in per]), "run_total_us": med([x["run_total_us"] for x in per]),
               "groups_us": {g: med([x["groups_us"][g] for x in per]) for g in ("loops", "store", "other")},
               "idle_us": med([x.get("idle_us") for x in per])}
        threads = {}
        for x in per:
            for tid, t in x["threads"].items():
                threads.setdefault(tid, {"name": t["name"], "group": t["group"], "us": []})["us"].append(t["us"])
        out["threads"] = {tid: {"name": t["name"], "group": t["group"], "us": med(t["us"])}
                          for tid, t in threads.items()}
        return out

    low = result["settings"]["low_rate"]
    s["cpu"] = {"saturation": cpu_summary("gateway/closed8"), "low": cpu_summary(f"gateway@{low}")}
    lowrun = (by.get(f"gateway@{low}") or [None])[0]
    if lowrun:
        s["cpu"]["low_latency_ms"] = lowrun["latency_ms"]
        s["cpu"]["low_rate_achieved"] = lowrun["rate"]
        s["cpu"]["low_errors"] = lowrun["errors"] + lowrun["skipped"]

    # Throughput.
    gw_rate = med([r["rate"] for r in by.get("gateway/closed8", [])])
    d_rate = med([r["rate"] for r in by.get("direct/closed8", [])])
    ratios = []
    for rnd in {r["round"] for r in by.get("gateway/closed8", [])}:
        g = [r for r in by["gateway/closed8"] if r["round"] == rnd]
        d = [r for r in by.get("direct/closed8", []) if r["round"] == rnd]
        if g and d and g[0]["rate"]:
            ratios.append(d[0]["rate"] / g[0]["rate"])
    per_proc = {}
    for key in ("direct/closed8", "gateway/closed8"):
        rs = by.get(key, [])
        if rs:
            per_proc[key] = {
                "load_us": med([r["load_cpu_s"] / r["requests_with_warmup"] * 1e6 for r in rs
                                if r["requests_with_warmup"]]),
                "mocks_us": med([r["mock_cpu_s"] / r["requests_with_warmup"] * 1e6 for r in rs
                                 if r["requests_with_warmup"]]),
                "gateway_us": med([r["gateway"]["cpu_s"] / r["gateway"]["requests"] * 1e6 for r in rs
                                   if r.get("gateway") and r["gateway"].get("requests")]),
                "gateway_wait_pct": med([r["gateway"].get("wait_s", 0) / r["wall_s"] * 100 for r in rs
                                         if r.get("gateway") and r.get("wall_s")]),
                "gateway_run_pct": med([r["gateway"]["cpu_s"] / r["wall_s"] * 100 for r in rs
                                        if r.get("gateway") and r.get("wall_s")]),
                "p50": lat_med(key, "p50"), "p99": lat_med(key, "p99"),
                "errors": sum(r["errors"] for r in rs)}
    s["throughput"] = {"gateway": gw_rate, "direct": d_rate, "ratio": med(ratios), "ratio_rounds": ratios,
                       "gateway_rounds": [r["rate"] for r in by.get("gateway/closed8", [])],
                       "direct_rounds": [r["rate"] for r in by.get("direct/closed8", [])], "cpu": per_proc}

    # Tails.
    tails = {}
    for rate in result["settings"]["rates"]:
        gk, dk = f"gateway@{rate}", f"direct@{rate}"
        g = {r["round"]: r for r in by.get(gk, [])}
        d = {r["round"]: r for r in by.get(dk, [])}
        t = {"gateway": {}, "direct": {}, "overhead": {}, "overhead_worst": {}, "overhead_rounds": {},
             "overhead_of_medians": {}}
        for qn in ("p50", "p99", "p999", "max"):
            t["gateway"][qn] = lat_med(gk, qn)
            t["direct"][qn] = lat_med(dk, qn)
            diffs = [g[k]["latency_ms"][qn] - d[k]["latency_ms"][qn] for k in g
                     if k in d and g[k]["latency_ms"] and d[k]["latency_ms"]]
            t["overhead"][qn] = med(diffs)
            t["overhead_worst"][qn] = max(diffs) if diffs else None
            t["overhead_rounds"][qn] = diffs
            t["overhead_of_medians"][qn] = (None if t["gateway"][qn] is None or t["direct"][qn] is None
                                            else t["gateway"][qn] - t["direct"][qn])
        for side, runs_ in (("gateway", by.get(gk, [])), ("direct", by.get(dk, []))):
            t[side]["rate"] = med([r["rate"] for r in runs_])
            t[side]["errors"] = sum(r["errors"] for r in runs_)
            t[side]["skipped"] = sum(r["skipped"] for r in runs_)
            t[side]["worst_max"] = max([(r["latency_ms"] or {}).get("max") or 0 for r in runs_] or [0])
        gcpu = [r["gateway"]["cpu_s"] / r["gateway"]["requests"] * 1e6 for r in by.get(gk, [])
                if r.get("gateway") and r["gateway"].get("requests")]
        t["gateway_cpu_us"] = med(gcpu)
        tails[rate] = t
    s["tails"] = tails

    # Streams.
    st = result.get("streams") or {"attempts": []}
    atts = st["attempts"]
    gw_atts = [a for a in atts if a["via"] == "gateway"]
    full = [a for a in gw_atts if a["tps"] == STREAM_TPS and a["tokens"] == STREAM_TOKENS]
    slow = [a for a in gw_atts if a not in full]
    first = full[0] if full else None
    held_full = [a for a in full if a["held"]]
    best_full = max(held_full, key=lambda a: a["streams"]) if held_full else None
    held_any = [a for a in gw_atts if a["held"]]
    mem_ref = max(held_any or gw_atts, key=lambda a: a.get("peak_streams") or 0) if gw_atts else None
    s["streams"] = {"first": first and first["streams"], "largest_held_full_pace": best_full and best_full["streams"],
                    "slow_pace_held": [a["streams"] for a in slow if a["held"]],
                    "memory_reference": mem_ref and {"streams": mem_ref["streams"], "pace": pace_label(mem_ref)}}

    # Targets.
    targets = []
    tp = s["throughput"]
    met_tp = (tp["gateway"] or 0) >= GOAL_RPS or (tp["ratio"] is not None and tp["ratio"] <= GOAL_RATIO)
    if tp["gateway"] or tp["direct"]:
        targets.append({"target": "Closed-loop throughput, 8 connections", "goal": f"≥ {GOAL_RPS:,} req/s or within "
                        f"{GOAL_RATIO:g}x of the mock direct", "measured": (
                            f"{tp['gateway']:,.0f} req/s; direct {tp['direct']:,.0f} req/s, {tp['ratio']:.2f}x"
                            if tp["gateway"] and tp["direct"] and tp["ratio"] else "—"), "met": met_tp})
    for rate, t in tails.items():
        if t["gateway"]["rate"] is None:
            continue
        for qn, goal, label in (("p99", GOAL_OV_P99_MS, "p99"), ("p999", GOAL_OV_P999_MS, "p99.9"),
                                ("max", GOAL_OV_MAX_MS, "max")):
            v, w, dm = t["overhead"][qn], t["overhead_worst"][qn], t["overhead_of_medians"][qn]
            errs = t["gateway"]["errors"] + t["gateway"]["skipped"]
            short = (t["gateway"]["rate"] or 0) < 0.97 * rate
            targets.append({"target": f"Overhead {label} at {rate:,} req/s", "goal": f"≤ {goal:g} ms",
                            "measured": "—" if v is None else f"{v:.3f} ms (difference of the medians "
                            f"{dm:.3f} ms; worst round {w:.3f} ms)"
                            + (f"; not sustained: the gateway achieved {t['gateway']['rate']:,.0f} req/s"
                               if short else "")
                            + (f"; {t['gateway']['errors']:,} errors, {t['gateway']['skipped']:,} skipped sends"
                               if errs else ""),
                            "met": v is not None and v <= goal and dm is not None and dm <= goal and errs == 0
                            and not short})
    if first:
        targets.append({"target": f"{st['requested']:,} concurrent streams ({pace_label(first)}) without errors",
                        "goal": f"{st['requested']:,} streams, 0 errors",
                        "measured": stream_measured(st, first, best_full, slow),
                        "met": bool(first["held"] and first["streams"] >= st["requested"])})
    if mem_ref:
        kib = mem_ref.get("kib_per_stream")
        targets.append({"target": "Gateway memory per open stream", "goal": f"≤ {GOAL_STREAM_MEM_KIB} KiB",
                        "measured": "—" if kib is None else (
                            f"{kib:.1f} KiB at {mem_ref.get('peak_streams', 0):,} open streams ({pace_label(mem_ref)}"
                            f"{'' if mem_ref['held'] else ', not held'}; {mem_ref['kib_per_stream_max_rss']:.1f} KiB "
                            "with the largest RSS of the run)"),
                        "met": kib is not None and kib <= GOAL_STREAM_MEM_KIB})
    ref = best_full or first
    if ref:
        p99 = ref.get("chunk_delay_p99_ms")
        targets.append({"target": "Chunk delay in the gateway (arrival → client socket), p99",
                        "goal": f"≤ {GOAL_CHUNK_P99_MS:g} ms",
                        "measured": ("missing: this build has no bakeoff_stream_chunk_delay_seconds"
                                     if not ref.get("has_chunk_histogram") else
                                     "—" if p99 is None else
                                     f"{p99:.2f} ms at {ref['streams']:,} streams "
                                     f"(bucket ≤ {ref['chunk_delay_p99_bucket_ms']:g} ms)"),
                        "met": p99 is not None and p99 <= GOAL_CHUNK_P99_MS})
    s["targets"] = targets
    return s


def stream_measured(st, first, best, slow):
    parts = []
    l = first["load"]
    parts.append(f"{first['streams']:,}" + (" (the most the open-files limit allows)" if st["capped_by_open_files"]
                                            else "") + f": {l['errors']} errors, {l['skipped']} skipped, peak "
                 f"{first.get('peak_streams', 0):,} open" + ("" if first["held"] else " — not held"))
    if best and best is not first:
        parts.append(f"largest held at this pace {best['streams']:,} (peak {best.get('peak_streams', 0):,})")
    elif not best:
        parts.append("no count held at this pace")
    for a in slow:
        parts.append(f"at {pace_label(a)}: {a['streams']:,} {'held' if a['held'] else 'not held'} "
                     f"({a['load']['errors']} errors, {a['load']['skipped']} skipped, "
                     f"peak {a.get('peak_streams', 0):,})")
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------ Markdown
def f_us(x):
    return "—" if x is None else f"{x:,.1f} µs" if x < 100 else f"{x:,.0f} µs"


def f_ms(x):
    return "—" if x is None else f"{x:,.3f} ms" if abs(x) < 10 else f"{x:,.1f} ms"


def f_rps(x):
    return "—" if x is None else f"{x:,.0f}"


def f_kib(x):
    return "—" if x is None else f"{x / 1024:,.1f} MiB"


def render(res):
    s = res["summary"]
    st, v, m = res["settings"], res["versions"], res["machine"]
    md = [SECTION_TITLE + "\n"]
    md.append(f"Written by `{res['command']}` (`scripts/bench/gateway_perf.py`) on {res['date']}"
              + (" — **quick mode** (short runs, development only)" if res["quick"] else "") + ".\n")
    md.append(f"- Machine: {m['nproc']} cores, `{m['cpu_model']}`, {m['kernel']}; load average "
              f"{' '.join(m['loadavg_start'])} at start, {' '.join(m.get('loadavg_end', []))} at the end (the two "
              "cores are shared by the load generator, the mocks, the gateway and other jobs).")
    md.append(f"- Versions: bakeoff commit {v['bakeoff_commit']}"
              f"{' with uncommitted changes' if v['bakeoff_dirty'] else ''}; binary `{v['binary']}` "
              f"(sha256 {v['binary_sha256']}…, built {v['binary_mtime_utc']}); "
              + ("threads named (bakeoff-loop-N, bakeoff-store, …)." if res.get("threads_named") else
                 "threads unnamed in this build (roles inferred from perf samples and CPU use)."))
    of = res["open_files"]
    md.append(f"- Runs: {st['rounds']} rounds of {st['duration']:g} s (+{st['warmup']:g} s warm-up) per configuration, "
              f"alternating, medians over rounds; {st['gateway_threads']} gateway threads; open files "
              f"{of['soft']:,} (hard {of['hard']:,}{'; ' + of['note'] if of['note'] else ''}). "
              f"Total {res['elapsed_s']:.0f} s.\n")

    md.append("| Target (issue 17) | Goal | Measured | Met |\n| --- | --- | --- | --- |")
    for t in s["targets"]:
        md.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else '**NO**'} |")
    md.append("")

    # ---- CPU per request
    cs, cl = s["cpu"]["saturation"], s["cpu"]["low"]
    if cs or cl:
        render_cpu(md, res, cs, cl)
    tp = s["throughput"]
    if tp["gateway"] or tp["direct"]:
        render_throughput(md, tp)
    if any(t["gateway"]["rate"] is not None for t in s["tails"].values()):
        render_tails(md, s)
    if "perf" in res:
        render_perf(md, res)
    if res.get("streams"):
        render_streams(md, res)
    render_how(md, res)
    return "\n".join(md)


def render_cpu(md, res, cs, cl):
    s, st = res["summary"], res["settings"]
    md.append("### CPU per proxied request\n")
    rows = ["| Load | Requests | All threads | Loops | Store writer | Other threads | Idle share |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, c in ((f"saturation (closed loop, 8 connections; {st['rounds']} runs)", cs),
                     (f"{st['low_rate']} req/s open loop ({st['low_rate_duration']:g} s)", cl)):
        if c:
            rows.append(f"| {label} | {c['requests']:,} | {f_us(c['total_us'])} | {f_us(c['groups_us']['loops'])} | "
                        f"{f_us(c['groups_us']['store'])} | {f_us(c['groups_us']['other'])} | "
                        f"{f_us(c.get('idle_us'))} |")
    md.append("\n".join(rows) + "\n")
    thr = []
    for label, c in (("saturation", cs), (f"{st['low_rate']} req/s", cl)):
        if c:
            items = sorted(c["threads"].values(), key=lambda t: -t["us"])
            thr.append(f"{label}: " + ", ".join(f"{t['name']} ({t['group']}) {f_us(t['us'])}" for t in items
                                                if t["us"] >= 0.05))
    idle = res.get("idle")
    md.append("Per thread (µs per request) — " + "; ".join(thr) + "." + (
              f" Idle, the gateway uses {idle['cpu_ms_per_s']:.2f} ms of CPU per second (the \"idle share\" column "
              "is that rate over the run divided by its requests, already included in the total)." if idle else "")
              + (f" Latency at {st['low_rate']} req/s: p50 {f_ms(s['cpu']['low_latency_ms'].get('p50'))}, p99 "
                 f"{f_ms(s['cpu']['low_latency_ms'].get('p99'))}." if s["cpu"].get("low_latency_ms") else "") + "\n")



def render_throughput(md, tp):
    md.append("### Closed-loop throughput, 8 connections\n")
    rows = ["| Path | Throughput (median) | Rounds | p50 | p99 | CPU per request: load generator / mocks / gateway |",
            "| --- | --- | --- | --- | --- | --- |"]
    for key, label, rs in (("direct/closed8", "Mock upstream direct", tp["direct_rounds"]),
                           ("gateway/closed8", "Gateway → mocks", tp["gateway_rounds"])):
        c = tp["cpu"].get(key, {})
        rows.append(f"| {label} | {f_rps(tp['direct' if key.startswith('direct') else 'gateway'])} req/s"
                    f"{' (' + str(c['errors']) + ' errors)' if c.get('errors') else ''} | "
                    f"{', '.join(f_rps(x) for x in rs)} | {f_ms(c.get('p50'))} | {f_ms(c.get('p99'))} | "
                    f"{f_us(c.get('load_us'))} / {f_us(c.get('mocks_us'))} / {f_us(c.get('gateway_us'))} |")
    md.append("\n".join(rows) + "\n")
    if tp["ratio"]:
        g = tp["cpu"].get("gateway/closed8", {})
        md.append(f"Direct / gateway: {tp['ratio']:.2f}x (median of the rounds' ratios: "
                  f"{', '.join(f'{x:.2f}' for x in tp['ratio_rounds'])}). All three processes share the two cores, "
                  "so the gateway's throughput is bounded by the sum of their CPU per request, not by the gateway alone"
                  + (f"; the gateway's threads ran {g['gateway_run_pct']:.0f}% of a core and waited for a core "
                     f"{g['gateway_wait_pct']:.0f}% (summed over threads, /proc schedstat)"
                     if g.get("gateway_wait_pct") is not None and g.get("gateway_run_pct") is not None else "")
                  + ".\n")



def render_tails(md, s):
    md.append("### Open-loop tails (gateway minus direct, same round, same rate)\n")
    rows = ["| Rate | Path | Achieved | p50 | p99 | p99.9 | max | Errors / skipped | Gateway CPU per request |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rate, t in s["tails"].items():
        if t["gateway"]["rate"] is None:
            continue
        for side, label in (("direct", "direct"), ("gateway", "gateway")):
            g = t[side]
            rows.append(f"| {int(rate):,} | {label} | {f_rps(g.get('rate'))} | {f_ms(g['p50'])} | {f_ms(g['p99'])} | "
                        f"{f_ms(g['p999'])} | {f_ms(g['max'])} | {g['errors']} / {g['skipped']} | "
                        f"{f_us(t['gateway_cpu_us']) if side == 'gateway' else '—'} |")
        o, w, dm = t["overhead"], t["overhead_worst"], t["overhead_of_medians"]
        rows.append(f"| {int(rate):,} | **overhead**: median of the rounds' differences (worst round) | | "
                    f"{f_ms(o['p50'])} ({f_ms(w['p50'])}) | {f_ms(o['p99'])} ({f_ms(w['p99'])}) | "
                    f"{f_ms(o['p999'])} ({f_ms(w['p999'])}) | {f_ms(o['max'])} ({f_ms(w['max'])}) | | |")
        rows.append(f"| {int(rate):,} | overhead: difference of the medians | | {f_ms(dm['p50'])} | {f_ms(dm['p99'])} "
                    f"| {f_ms(dm['p999'])} | {f_ms(dm['max'])} | | |")
    md.append("\n".join(rows) + "\n")



def render_perf(md, res):
    st = res["settings"]
    md.append("### Cost of each part (perf, closed loop, 8 connections)\n")
    pf = res.get("perf") or {}
    if pf.get("skipped"):
        md.append(f"Skipped: {pf['skipped'].strip()}\n")
    else:
        ld = pf["load"]
        md.append("`perf record -e cpu-clock -F 2000 -g -p GATEWAY` during a "
                  f"{st['perf_duration']:g} s closed-loop run "
                  f"({ld['rate']:,.0f} req/s under perf, {pf['requests']:,} requests counted by the gateway): "
                  f"{pf['samples']:,} samples, {pf['cpu_s']:.2f} s of CPU, {f_us(pf['us_per_request'])} per request "
                  f"(/proc: {f_us(pf.get('proc_cpu_us_per_request'))}; perf itself adds some).\n")
        rows = ["| Part | Share | µs per request | + allocation it calls (via call chains) |",
                "| --- | --- | --- | --- |"]
        for r in pf["rows"]:
            a = r.get("alloc_called_from_it_us")
            rows.append(f"| {r['category']} | {r['share'] * 100:.1f}% | {f_us(r['us_per_request'])} | "
                        f"{f_us(a) if a else ''} |")
        md.append("\n".join(rows) + "\n")
        th = pf.get("threads") or {}
        md.append("By thread group: " + ", ".join(f"{GROUP_LABELS.get(k, k)} {v * 100:.1f}%" for k, v in
                                                  sorted(th.items(), key=lambda kv: -kv[1])) + ".")
        md.append("Top symbols (self): " + "; ".join(f"`{t['symbol'][:90]}` ({t['dso']}) {t['share'] * 100:.1f}%"
                                                   for t in pf.get("top_symbols", [])[:10]) + ".\n")



def render_streams(md, res):
    md.append("### Concurrent streams\n")
    stv = res["streams"]
    if stv["capped_by_open_files"]:
        md.append(f"The gateway needs two descriptors per stream (client and upstream connection): with an open-files "
                  f"limit of {res['open_files']['soft']:,} it can hold about {stv['fd_cap']:,}, so the largest count "
                  f"tried is {stv['target']:,} instead of {stv['requested']:,}"
                  + (f" ({res['open_files']['note']})" if res['open_files']['note'] else "") + ".\n")
    rows = ["| Streams (new per s × s) | Pace | Path | Errors / skipped | Peak open streams | RSS idle → at peak "
            "(max) | Memory per stream | Stream length p50 / p99 | TTFT p50 / p99 | Chunk delay p50 / p99 "
            "| Gateway CPU | CPU while streams were ≥ 80% of the peak |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for a in stv["attempts"]:
        l = a["load"]
        lat, tt = l.get("latency_ms") or {}, l.get("ttft_ms") or {}
        gw = a["via"] == "gateway"
        chunk = ("missing" if gw and not a.get("has_chunk_histogram") else
                 f"{f_ms(a.get('chunk_delay_p50_ms'))} / {f_ms(a.get('chunk_delay_p99_ms'))}" if gw else "—")
        cpu = (f"{a['gateway_cpu_s']:.1f} s" if gw and a.get("gateway_cpu_s") is not None else "—")
        peak = f"{a.get('peak_streams', 0):,}" + (
            " (estimated from descriptors)" if a.get("peak_source") == "descriptors" else "")
        if (a.get("peak_connections") or 0) > 1:
            peak += f"; {a['peak_connections']:,} client connections"
        rows.append(
            f"| {a['streams']:,} ({a['rate']:g}/s × {a['duration_s']:g} s) "
            f"{'held' if a['held'] else '**not held**'} | "
            f"{pace_label(a)} | {'gateway' if gw else 'direct to one mock'} | "
            f"{l['errors']} / {l['skipped']} of {l['requests']:,} | {peak} | "
            + (f"{f_kib(a.get('rss_idle_kib'))} → {f_kib(a.get('rss_at_peak_kib'))} ({f_kib(a.get('rss_max_kib'))})"
               if gw else "—") + " | "
            + (f"{a['kib_per_stream']:.1f} KiB" if a.get("kib_per_stream") is not None else "—") + " | "
            f"{f_ms(lat.get('p50'))} / {f_ms(lat.get('p99'))} | {f_ms(tt.get('p50'))} / {f_ms(tt.get('p99'))} | "
            f"{chunk} | {cpu} | {a.get('bottleneck', '—')} |")
    md.append("\n".join(rows) + "\n")
    full = [a for a in stv["attempts"] if a["via"] == "gateway" and a["tps"] == STREAM_TPS
            and a["tokens"] == STREAM_TOKENS and a.get("us_per_chunk")]
    if full:
        # What the issue's load would take on these cores, at the CPU per chunk measured here (the largest
        # attempt that held, else the largest measured).
        a = max(full, key=lambda x: (x["held"], x["streams"]))
        upc = a["us_per_chunk"]
        per_s = stv["requested"] * STREAM_TPS
        mocks = sum(v for k, v in upc.items() if k.startswith("mock"))
        need = {"mocks": mocks * per_s / 1e6, "gateway": upc.get("gateway", 0) * per_s / 1e6,
                "load generator": upc.get("load", 0) * per_s / 1e6}
        md.append(f"At the issue's pace {stv['requested']:,} streams are {per_s:,} chunks a second. At the CPU per "
                  f"chunk measured in the {a['streams']:,}-stream attempt that would take "
                  + ", ".join(f"{k} {v:.1f}" for k, v in need.items())
                  + f" cores ({sum(need.values()):.1f} in all) against the {len(os.sched_getaffinity(0))} shared here"
                  + stream_limit_text(a, max(need, key=need.get)) + ".\n")
    profiled = [a for a in stv["attempts"] if a.get("perf")]
    if profiled:
        md.append("Where the gateway's CPU goes while many streams are open "
                  "(`perf record -e cpu-clock -F 2000 -g` on the "
                  "gateway for 4 s from 90% of a stream's length; same classification as above):\n")
        for a in profiled:
            pf = a["perf"]
            head = (f"- {a['streams']:,} streams at {pace_label(a)}, from {a.get('perf_t', 0):g} s"
                    + (f" ({a['perf_open_streams']:,.0f} open at the last /metrics sample)"
                       if a.get("perf_open_streams") is not None else ""))
            if pf.get("skipped"):
                md.append(head + f": skipped ({pf['skipped'].strip()[:200]})")
                continue
            parts = ", ".join(f"{r['category'].split(' (')[0]} {r['share'] * 100:.1f}%" for r in pf["rows"]
                              if r["share"] >= 0.02)
            tops = "; ".join(f"`{t['symbol'][:70]}` ({t['dso']}) {t['share'] * 100:.1f}%"
                             for t in pf.get("top_symbols", [])[:6])
            md.append(head + f": {pf['cores']:.2f} cores — {parts}. Top symbols: {tops}.")
        md.append("")
    missed = [a for a in stv["attempts"] if a.get("metrics_missed")]
    if missed:
        md.append("/metrics did not answer within 2 s in some samples while the cores were saturated: "
                  + ", ".join(f"{a['streams']:,} streams: {a['metrics_missed']} of {len(a['samples'])}" for a in missed)
                  + ".\n")


def stream_limit_text(a, top):
    """Which process limits an attempt, from the busiest thread of each while streams were near the peak."""
    cpu = (a.get("plateau_cpu") or a.get("whole_cpu") or {}).get("procs") or {}
    labels = {"gateway": "gateway", "load": "load generator", "mock1": "mock 1", "mock2": "mock 2"}
    hot = [labels.get(n, n) for n, p in cpu.items() if p["busiest_thread_pct"] >= 90]
    if hot:
        return f"; the busiest thread of the {', '.join(hot)} ran ≥ 90% of a core: that is the limit"
    active = [n for n, p in cpu.items() if p["pct"] > 1]
    starved = [labels.get(n, n) for n in active
               if cpu[n].get("busiest_thread_wait_pct", 0) > cpu[n]["busiest_thread_pct"]]
    if starved and len(starved) == len(active):
        return ("; no thread ran near 100% of a core, and the busiest thread of every process waited for a core "
                "longer than it ran (last column): the limit is the CPU of all the processes together on the "
                f"shared cores (the {top} {'need' if top == 'mocks' else 'needs'} the most), not one saturated thread")
    if starved:
        return (f"; the busiest thread of the {', '.join(starved)} waited for a core longer than it ran "
                "(last column): the cores are oversubscribed")
    return ""


def render_how(md, res):
    st = res["settings"]
    md.append("### How measured\n")
    md.append(
        "Two `bakeoff mock-upstream` processes (`" + res["mock"] + "`, answering at once) behind one `bakeoff serve` "
        "with one experiment (split 0.5, one mock per variant, logging to its SQLite store); \"direct\" is the same "
        "load sent straight to mock 1. Load: `bakeoff load` (closed loop `--rate 0 --concurrency 8`; open loop "
        "`--concurrency 512`, where sends that find 512 outstanding count as skipped). Every process on the same two "
        "cores, nothing pinned. **CPU per request**: utime + stime of every gateway thread (/proc/PID/task/*/stat, "
        "grouped by thread name: `bakeoff-loop-N` = loops, `bakeoff-store*` = store writer, the rest other) over a "
        "run including its warm-up, divided by the requests the gateway counted in the same window (change of "
        "`bakeoff_requests_total`); the low-rate run includes the idle cost of the background threads. **Tails**: "
        "overhead = gateway minus direct of the same round at the same rate, median over rounds, and the worst "
        "round; a goal counts as met when both that median and the difference of the medians meet it (a bad "
        "direct round can make a round's difference negative). **Cost of each part**: perf samples (cpu-clock, "
        "frame-pointer call chains) classified by their "
        "leaf symbol; a leaf in the Swift standard library, libc string functions or an unknown frame is charged to "
        "the first gateway part found up its call chain; kernel samples by their system call (send/recv/… = socket "
        "work, charged to the HTTP server or the upstream client when the call chain or a thread that does only "
        "one of them says which; epoll/futex/poll = scheduling); allocation (malloc/free, swift_retain/release) "
        "stays its own row, with the part that called it in the last column where the chain shows it. "
        "**Streams**: fresh mocks (`" + res["mock_stream"] + "`, 200 chunks over 10 s, one per variant) and a "
        "fresh gateway for every attempt; `bakeoff load --stream --warmup 0` sends count / stream length new streams "
        f"a second for the length + {st['stream_duration'] - 10:g} s (open loop, `--concurrency` at the gateway's "
        f"descriptor limit, `--timeout {st['stream_timeout']:g}` or the length + 30 s), so that streams overlap to the "
        "count. The largest count first; "
        "an attempt holds with no errors, no skipped sends and a peak of open streams ≥ 90% of the count; if not, a "
        "smaller count (a little under the peak reached) is tried, and, once, the largest count direct to a mock "
        "(load generator and mock alone; not in --quick) and through the gateway at a sparse pace (16 chunks over "
        "30 s, 6 over 10 s in --quick: as many open streams with far fewer chunks and new streams a second, for the "
        "memory per stream at the full count). Every second: "
        "/metrics (`bakeoff_upstream_calls_active` = open streams, `bakeoff_http_connections_open`; when /metrics "
        "does not answer within 2 s the count is estimated from the processes' descriptors), VmRSS and the CPU of "
        "every process and thread (schedstat). Memory per stream = (RSS at the peak − RSS idle after a short "
        "warm-up) / open streams at the peak. Chunk delay from the gateway's `bakeoff_stream_chunk_delay_seconds` "
        "histogram (its change over the run, linear within buckets). The CPU column is % of one core per process "
        "while streams were ≥ 80% of the peak, with the busiest thread of each; \"other jobs\" is the machine's "
        "busy time not used by these processes; CPU per chunk is each process's CPU over the whole run divided by "
        "the chunks streamed (streams × chunks). "
        f"Raw runs: `{os.path.join(res.get('out', 'out/bench'), 'gateway_perf.json')}`.\n")
    md.append("Reproduce: `python3 scripts/bench/gateway_perf.py --bin .build/product/release/bakeoff "
              "[--quick] [--markdown BENCHMARKS.md]`; options for rounds, durations, stream counts and `--phases`: "
              "`--help`.\n")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"gateway_perf.py: {e}", file=sys.stderr)
        sys.exit(1)
