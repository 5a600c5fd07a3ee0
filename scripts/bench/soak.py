#!/usr/bin/env python3
"""Gateway soak: fixed-rate chat and feedback traffic through `bakeoff serve` while 5,000 slowloris connections
are held open, the store's disk fills up and is freed, and the gateway is killed with SIGKILL and restarted.

    soak.py --bin .build/product/release/bakeoff [--out out/bench] [--markdown BENCHMARKS.md] [--short]

Standard library only; loopback only; bounded in time (the full run ~3 minutes, --short ~40 s).

What it does, in order (times are for the full run; --short shrinks them):

1. Mounts a small tmpfs (as root: `mount -t tmpfs -o size=48m`) for the gateway's store, starts
   `bakeoff mock-upstream` (answers at once) and `bakeoff serve` (one experiment, split 0.5; the gateway's
   defaults, except in --short a `store.queue_capacity` of 64, so that the full disk also fills the queue and
   events are dropped and counted). Without root or tmpfs the store goes into the output directory and the
   disk phase is skipped (said in the report).
2. Open-loop traffic from 127.0.0.1 at --rate chat requests per second (half streaming), in conversations of
   --turns turns, each request with the user in the body `user` and a conversation header; per-request
   feedback (`thumbs_up`, every third request, 0.3 s after its answer) and conversation feedback
   (`task_completed`, after the last turn), with the user in the body `user` and the X-Bakeoff-User header.
   Every answer is recorded: status, x-bakeoff-request-id, latency from the scheduled send time.
3. Phases: baseline (no attack); slowloris: a child process (`soak.py slowloris`, asyncio) opens
   --connections connections from 127.0.0.2..127.0.0.(1+--addresses) (the client socket is bound to the
   address), each sending a request line and then one header line every --trickle seconds, never ending the
   headers; a connection the server closes is reopened (after a backoff that grows while it is refused at
   once); attack steady state; the disk fills (a file written until ENOSPC, held until the gateway shows the
   store failing and --disk-hold seconds more, then deleted); recovery; kill -9 of the gateway and a restart
   on the same store and port; traffic goes on; then everything stops.
4. Samples every 0.5 s: the gateway's VmRSS/VmHWM (/proc/PID/status), its open descriptors, /healthz,
   and /metrics (bakeoff_events_dropped_total and friends; the last scrape before the kill counts the first
   process's drops).
5. At the end the gateway gets SIGTERM (it flushes), `bakeoff export --db STORE --include-qa` is read, and:
   - requests served (answered 200) vs request events stored: lost = served ids missing from the store;
     the documented window is the requests answered in the flush interval (+ --kill-slack-ms) before the
     kill, plus the events the gateway refused with a full queue (bakeoff_events_dropped_total);
   - feedback acknowledged (answered 200) vs feedback events found: must be equal; missing keys are listed;
   - every normal request sent outside the disk-full and kill windows must be answered 200 (feedback that
     gets 404 because its request's event was lost at the kill is the documented loss, not a failure);
   - latency p50/p95/p99 of normal chat requests per phase; peak RSS; what the slowloris client saw.

Prints a table; writes OUT/soak.json and, with --markdown, the section "## Gateway soak" of that file.
Exit status 1 when an invariant does not hold (2 when the run itself could not be done).
"""

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SECTION_TITLE = "## Gateway soak"
MODEL = "support-bot"
EXPERIMENT = "soak"
HOST = "127.0.0.1"
START = time.monotonic()


def log(msg):
    print(f"[soak {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ============================================================================================ slowloris
class Slowloris:
    """Holds `connections` connections open from many source addresses, trickling header lines forever."""

    def __init__(self, port, connections, addresses, trickle, ramp_rate, first_address=2):
        self.port = port
        self.connections = connections
        self.addresses = [f"127.0.{(first_address + k) // 256}.{(first_address + k) % 256}" for k in range(addresses)]
        self.trickle = trickle
        self.ramp_rate = ramp_rate
        self.stopping = False
        self.open = 0
        self.peak_open = 0
        self.opened = 0          # successful connects
        self.connect_failed = 0  # connect refused / timed out
        self.closed_by_server = 0
        self.closed_at_once = 0  # closed within 1 s of being opened (e.g. over a per-address limit)
        self.answered = 0        # the server wrote something (e.g. 408/431/503) before closing
        self.answers = {}
        self.lines_sent = 0
        self.lifetimes = []      # seconds each server-closed connection lived (capped sample)

    def stats(self):
        life = sorted(self.lifetimes)
        return {"t": round(time.monotonic() - START, 3), "open": self.open, "peak_open": self.peak_open,
                "opened": self.opened, "connect_failed": self.connect_failed,
                "closed_by_server": self.closed_by_server, "closed_at_once": self.closed_at_once,
                "answered": self.answered, "answers": self.answers, "lines_sent": self.lines_sent,
                "cpu_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 2),
                "lifetime_p50_s": life[len(life) // 2] if life else None,
                "lifetime_max_s": life[-1] if life else None}

    async def hold(self, index, start_at):
        rnd = random.Random(index)
        source = self.addresses[index % len(self.addresses)]
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        backoff = 0.25
        while not self.stopping:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(HOST, self.port, local_addr=(source, 0)), 10)
            except (OSError, asyncio.TimeoutError):
                self.connect_failed += 1
                await asyncio.sleep(backoff * (0.5 + rnd.random()))
                backoff = min(backoff * 2, 8.0)
                continue
            self.opened += 1
            self.open += 1
            self.peak_open = max(self.peak_open, self.open)
            opened_at = time.monotonic()
            got = b""
            try:
                writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                             f"User-Agent: soak-slowloris/{index}\r\n".encode())
                while not self.stopping:
                    try:
                        data = await asyncio.wait_for(reader.read(4096), self.trickle * (0.75 + 0.5 * rnd.random()))
                    except asyncio.TimeoutError:
                        writer.write(f"X-Slow-{rnd.randrange(10**6)}: {rnd.randrange(10**6)}\r\n".encode())
                        await writer.drain()
                        self.lines_sent += 1
                        continue
                    if not data:
                        break
                    got += data[:64] if len(got) < 64 else b""
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                self.open -= 1
                writer.close()
            if self.stopping:
                return
            lived = time.monotonic() - opened_at
            self.closed_by_server += 1
            if len(self.lifetimes) < 100_000:
                self.lifetimes.append(round(lived, 2))
            if got:
                self.answered += 1
                m = re.match(rb"HTTP/1\.[01] (\d{3})", got)
                code = m.group(1).decode() if m else "other"
                self.answers[code] = self.answers.get(code, 0) + 1
            if lived < 1.0:
                self.closed_at_once += 1
                await asyncio.sleep(backoff * (0.5 + rnd.random()))
                backoff = min(backoff * 2, 8.0)
            else:
                backoff = 0.25
                await asyncio.sleep(0.1 * rnd.random())

    async def run(self, duration):
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        t0 = time.monotonic()
        tasks = [asyncio.create_task(self.hold(i, t0 + i / self.ramp_rate)) for i in range(self.connections)]

        async def report():
            while True:
                print(json.dumps(self.stats()), flush=True)
                await asyncio.sleep(1.0)
        reporter = asyncio.create_task(report())
        try:
            await asyncio.wait_for(stop.wait(), duration)
        except asyncio.TimeoutError:
            pass
        self.stopping = True
        reporter.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        final = self.stats()
        final["final"] = True
        print(json.dumps(final), flush=True)


def slowloris_main(argv):
    p = argparse.ArgumentParser(prog="soak.py slowloris")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--addresses", type=int, default=50)
    p.add_argument("--trickle", type=float, default=10.0)
    p.add_argument("--ramp-rate", type=float, default=1000.0)
    p.add_argument("--duration", type=float, default=600.0)
    a = p.parse_args(argv)
    raise_fd_limit()
    asyncio.run(Slowloris(a.port, a.connections, a.addresses, a.trickle, a.ramp_rate).run(a.duration))


# ============================================================================================ HTTP client
class HTTPResult:
    __slots__ = ("status", "headers", "body", "error")

    def __init__(self, status=0, headers=None, body=b"", error=None):
        self.status, self.headers, self.body, self.error = status, headers or {}, body, error


async def http_request(port, method, path, body=b"", headers=None, timeout=10.0):
    """One request on a new connection (Connection: close) from 127.0.0.1; never raises."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port)
            head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
            for k, v in (headers or {}).items():
                head.append(f"{k}: {v}")
            if body or method == "POST":
                head.append("Content-Type: application/json")
                head.append(f"Content-Length: {len(body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            hdrs = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            if "chunked" in hdrs.get("transfer-encoding", "").lower():
                parts = []
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        break
                    parts.append(await reader.readexactly(size))
                    await reader.readexactly(2)
                data = b"".join(parts)
            elif "content-length" in hdrs:
                data = await reader.readexactly(int(hdrs["content-length"]))
            else:
                data = await reader.read()
            return HTTPResult(status, hdrs, data)
    except TimeoutError:
        return HTTPResult(error="timeout")
    except (ConnectionRefusedError,):
        return HTTPResult(error="refused")
    except (ConnectionResetError, BrokenPipeError):
        return HTTPResult(error="reset")
    except asyncio.IncompleteReadError:
        return HTTPResult(error="closed")
    except (OSError, ValueError, IndexError) as e:
        return HTTPResult(error=type(e).__name__)
    finally:
        if writer is not None:
            writer.close()


# ============================================================================================ processes
class Processes:
    """Child processes, each the leader of its own session, with stderr in files; stop_all() ends them."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv, env=None):
        err = open(os.path.join(self.workdir, name + ".err"), "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, **(env or {})}, start_new_session=True, cwd=self.workdir)
        err.close()
        self.procs.append((name, proc))
        return proc

    def stderr_text(self, name):
        try:
            with open(os.path.join(self.workdir, name + ".err"), errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    async def wait_for_line(self, name, proc, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.stderr_text(name))
            if m:
                return m
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}) before it was ready:\n"
                                   f"{self.stderr_text(name)[-3000:]}")
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{name} not ready after {timeout} s:\n{self.stderr_text(name)[-3000:]}")

    @staticmethod
    def stop(proc, grace=15.0):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        for _name, proc in reversed(self.procs):
            self.stop(proc, grace=5.0)
        self.procs = []


def proc_status(pid):
    """VmRSS and VmHWM in KiB, and the number of open descriptors, of a live process (None when gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        return None
    return out


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None


def count_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def metric_values(text):
    """name -> value for the unlabelled samples (and the sum over labels for labelled ones)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if m:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                pass
    return out


def quantiles(values):
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    v = sorted(values)

    def q(p):
        # numpy's linear interpolation
        x = p * (len(v) - 1)
        lo = int(x)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (x - lo)
    return {"n": len(v), "p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": v[-1]}


# ============================================================================================ the soak
class Soak:
    def __init__(self, args, procs, workdir):
        self.a = args
        self.procs = procs
        self.workdir = workdir
        self.t0 = None
        self.port = None
        self.gateway = None        # the live gateway process
        self.gateway_lives = []    # per process: {"pid", "started", "ready", "hwm_kb", "rss_peak_kb", "fds_peak", "metrics"}
        self.chats = []            # dicts, one per chat request
        self.feedback = []         # dicts, one per feedback call
        self.conversations = {}    # conversation index -> {"user", "id", "last_ok_rid"}
        self.pending = set()
        self.events = {}           # name -> monotonic time (relative to t0)
        self.healthz = []          # (t, status or error)
        self.metrics_samples = []  # (t, life, values)
        self.slowloris_samples = []
        self.slowloris_final = None
        self.store_failing_seen_at = None
        self.traffic_on = True
        self.run_id = f"{int(time.time()) % 100000:05d}"

    def now(self):
        return time.monotonic() - self.t0

    def mark(self, name):
        self.events[name] = round(self.now(), 3)
        log(f"-- {name} at t={self.events[name]:.1f} s")

    # ------------------------------------------------------------------ gateway
    def config(self):
        extra = {}
        if self.a.per_address_limit is not None and self.per_address_supported:
            extra["max_connections_per_address"] = self.a.per_address_limit
        return {"listen": "127.0.0.1:8080", "threads": self.a.gateway_threads, **extra,
                "store": {"path": self.store_path, "flush_interval_ms": self.a.flush_interval_ms,
                          **({"queue_capacity": self.a.queue_capacity} if self.a.queue_capacity else {})},
                "experiments": [{"name": EXPERIMENT, "model": MODEL, "split": 0.5, "variants": [
                    {"name": "control", "upstream": {"base_url": self.mock_url, "model": "mock-v1"}},
                    {"name": "treatment", "upstream": {"base_url": self.mock_url, "model": "mock-v2"}}]}]}

    def check_config(self):
        """Writes the config; drops max_connections_per_address when this binary does not know it (older
        gateways); keeps `serve --check`'s summary of the limits for the report."""
        self.per_address_supported = True
        for _ in range(2):
            with open(self.config_path, "w") as fh:
                json.dump(self.config(), fh, indent=1)
            r = subprocess.run([self.a.bin, "serve", "--check", "--config", self.config_path], capture_output=True,
                               text=True, timeout=60, env={**os.environ, "BAKEOFF_ADMIN_KEY": "soak-admin-key-0123456789"})
            if r.returncode == 0:
                break
            if "max_connections_per_address" in r.stderr + r.stdout and self.per_address_supported:
                log("this gateway has no max_connections_per_address: left out of the config")
                self.per_address_supported = False
                continue
            raise RuntimeError(f"bakeoff serve --check refused the soak's config:\n{r.stderr[-2000:]}{r.stdout[-2000:]}")
        self.check_output = r.stdout + r.stderr
        self.limits_line = next((re.sub(r"^limits\s+", "", line.strip()) for line in self.check_output.splitlines()
                                 if "per client address" in line), None)

    async def start_gateway(self, port=0):
        life = len(self.gateway_lives) + 1
        name = f"gateway-{life}"
        started = self.now()
        proc = self.procs.start(name, [self.a.bin, "serve", "--config", self.config_path,
                                       "--listen", f"{HOST}:{port}"], env={"BAKEOFF_ADMIN_KEY": "soak-admin-key-0123456789"})
        m = await self.procs.wait_for_line(name, proc, r"listening on (http://\S+/v1)", 60)
        ready = self.now()
        self.port = int(re.search(r":(\d+)/v1$", m.group(1)).group(1))
        self.gateway = proc
        self.gateway_lives.append({"pid": proc.pid, "started": round(started, 3), "ready": round(ready, 3),
                                   "hwm_kb": 0, "rss_peak_kb": 0, "fds_peak": 0, "metrics": {}})
        log(f"{name} (pid {proc.pid}) ready on port {self.port} in {ready - started:.2f} s")
        return proc

    def sample_gateway(self):
        life = self.gateway_lives[-1] if self.gateway_lives else None
        if not life or self.gateway is None or self.gateway.poll() is not None:
            return
        st = proc_status(life["pid"])
        if st:
            life["hwm_kb"] = max(life["hwm_kb"], st.get("VmHWM", 0))
            life["rss_peak_kb"] = max(life["rss_peak_kb"], st.get("VmRSS", 0))
        cpu = proc_cpu_seconds(life["pid"])
        if cpu is not None:
            life["cpu_s"] = cpu
        fds = count_fds(life["pid"])
        if fds:
            life["fds_peak"] = max(life["fds_peak"], fds)

    async def monitor(self):
        """Every 0.5 s: RSS, descriptors, /healthz; every 1 s: /metrics."""
        tick = 0
        while self.traffic_on or tick == 0:
            tick += 1
            self.sample_gateway()
            if self.port:
                t = self.now()
                h = await http_request(self.port, "GET", "/healthz", timeout=2)
                self.healthz.append((round(t, 2), h.status or h.error))
                if h.status == 503 and "disk_full" in self.events and self.store_failing_seen_at is None:
                    self.store_failing_seen_at = t
                if tick % 2 == 0:
                    r = await http_request(self.port, "GET", "/metrics", timeout=2)
                    if r.status == 200:
                        values = metric_values(r.body.decode("utf-8", "replace"))
                        self.metrics_samples.append((round(t, 2), len(self.gateway_lives), values))
                        self.gateway_lives[-1]["metrics"] = values
                        if ("disk_full" in self.events and self.store_failing_seen_at is None
                                and values.get("bakeoff_events_dropped_total", 0) > self.dropped_at_fill):
                            self.store_failing_seen_at = t
            await asyncio.sleep(0.5)

    async def scrape_metrics(self):
        r = await http_request(self.port, "GET", "/metrics", timeout=5)
        if r.status == 200:
            values = metric_values(r.body.decode("utf-8", "replace"))
            self.gateway_lives[-1]["metrics"] = values
            return values
        return None

    # ------------------------------------------------------------------ traffic
    async def chat(self, i, sched):
        a = self.a
        c = i // a.turns
        turn = i % a.turns
        conv = self.conversations.setdefault(c, {"user": f"soak-user-{c % a.users}",
                                                 "id": f"soak-{self.run_id}-c{c}", "last_ok_rid": None})
        stream = (i % 2 == 1) if a.stream_share == 0.5 else (random.Random(i).random() < a.stream_share)
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"soak question {i}: where is my order?"}],
                "user": conv["user"]}
        if stream:
            body["stream"] = True
        rec = {"i": i, "sched": sched, "stream": stream, "user": conv["user"], "conv": conv["id"]}
        self.chats.append(rec)
        r = await http_request(self.port, "POST", "/v1/chat/completions", json.dumps(body).encode(),
                               {"X-Bakeoff-Conversation": conv["id"]}, timeout=a.request_timeout)
        end = self.now()
        ok = r.status == 200
        if ok and stream:
            ok = b"data: [DONE]" in r.body and b'"error"' not in r.body
        elif ok:
            ok = b'"choices"' in r.body
        rec.update(end=end, status=r.status, error=r.error, ok=ok, rid=r.headers.get("x-bakeoff-request-id"),
                   variant=r.headers.get("x-bakeoff-variant"))
        if not ok:
            return
        conv["last_ok_rid"] = rec["rid"]
        if i % 3 == 0:
            await asyncio.sleep(0.3)
            await self.send_feedback({"request_id": rec["rid"], "name": "thumbs_up", "value": i % 2 == 0},
                                     ("request", rec["rid"], "thumbs_up"), conv["user"], target_rid=rec["rid"])
        if turn == a.turns - 1:
            await asyncio.sleep(0.2)
            await self.send_feedback({"conversation_id": conv["id"], "name": "task_completed", "value": c % 4 != 0},
                                     ("conversation", conv["id"], "task_completed"), conv["user"], target_rid=rec["rid"])

    async def send_feedback(self, body, key, user, target_rid):
        if not self.traffic_on:
            return
        body = dict(body, user=user)
        rec = {"key": key, "sched": self.now(), "target_rid": target_rid}
        self.feedback.append(rec)
        r = await http_request(self.port, "POST", "/v1/feedback", json.dumps(body).encode(),
                               {"X-Bakeoff-User": user}, timeout=self.a.request_timeout)
        rec.update(end=self.now(), status=r.status, error=r.error,
                   code=self.error_code(r.body) if r.status and r.status != 200 else None)
        if r.status == 503 and "disk_full" in self.events and self.store_failing_seen_at is None:
            self.store_failing_seen_at = rec["end"]

    @staticmethod
    def error_code(body):
        try:
            return json.loads(body)["error"].get("code")
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    async def traffic(self, until):
        """Open loop: chat request i is sent at t_start + i / rate whatever happened to the others."""
        start = self.now()
        i = 0
        while self.traffic_on:
            sched = start + i / self.a.rate
            if sched >= until():
                break
            delay = sched - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.chat(i, sched))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            i += 1

    # ------------------------------------------------------------------ slowloris
    async def start_slowloris(self):
        a = self.a
        self.slowloris = await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), "slowloris", "--port", str(self.port),
            "--connections", str(a.connections), "--addresses", str(a.addresses), "--trickle", str(a.trickle),
            "--ramp-rate", str(a.ramp_rate), "--duration", str(a.max_seconds),
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)

        async def read():
            while True:
                line = await self.slowloris.stdout.readline()
                if not line:
                    return
                try:
                    s = json.loads(line)
                except ValueError:
                    continue
                s["t"] = round(self.now(), 2)
                self.slowloris_samples.append(s)
                if s.get("final"):
                    self.slowloris_final = s
        self.slowloris_reader = asyncio.create_task(read())

    async def wait_slowloris_open(self, want, timeout):
        deadline = self.now() + timeout
        while self.now() < deadline:
            if self.slowloris_samples and self.slowloris_samples[-1]["open"] >= want:
                return True
            await asyncio.sleep(0.25)
        return False

    async def stop_slowloris(self):
        if self.slowloris.returncode is None:
            self.slowloris.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.slowloris.wait(), 30)
        except asyncio.TimeoutError:
            self.slowloris.kill()
            await self.slowloris.wait()
        await asyncio.wait_for(self.slowloris_reader, 10)

    # ------------------------------------------------------------------ disk
    def fill_disk(self):
        """Writes a file into the store's tmpfs until ENOSPC; returns the bytes written."""
        chunk = b"\0" * (1 << 20)
        written = 0
        fd = os.open(self.filler_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while True:
                try:
                    n = os.write(fd, chunk)
                except OSError:
                    break
                if n <= 0:
                    break
                written += n
                if n < len(chunk):
                    # Fill the last bytes too.
                    try:
                        while True:
                            n = os.write(fd, b"\0" * 4096)
                            if n <= 0:
                                break
                            written += n
                    except OSError:
                        pass
                    break
        finally:
            os.close(fd)
        return written

    async def disk_phase(self):
        a = self.a
        self.dropped_at_fill = self.gateway_lives[-1]["metrics"].get("bakeoff_events_dropped_total", 0)
        self.mark("disk_full")
        self.filler_bytes = await asyncio.to_thread(self.fill_disk)
        st = os.statvfs(self.store_dir)
        log(f"filled the store's tmpfs with {self.filler_bytes / 2**20:.1f} MiB ({st.f_bavail * st.f_frsize} bytes left)")
        deadline = self.now() + a.disk_wait_max
        while self.store_failing_seen_at is None and self.now() < deadline:
            await asyncio.sleep(0.1)
        if self.store_failing_seen_at is not None:
            log(f"the gateway showed the store failing {self.store_failing_seen_at - self.events['disk_full']:.1f} s "
                f"after the fill; holding {a.disk_hold:g} s more")
        else:
            log(f"no sign of the store failing within {a.disk_wait_max:g} s; holding {a.disk_hold:g} s more")
        await asyncio.sleep(a.disk_hold)
        os.remove(self.filler_path)
        self.mark("disk_freed")

    # ------------------------------------------------------------------ kill -9
    async def kill_phase(self):
        self.sample_gateway()
        await self.scrape_metrics()
        self.sample_gateway()
        life = self.gateway_lives[-1]
        self.mark("kill")
        os.kill(life["pid"], signal.SIGKILL)
        self.gateway.wait()
        life["killed"] = self.events["kill"]
        await self.start_gateway(self.port)
        self.mark("restarted")

    # ------------------------------------------------------------------ the run
    async def run(self):
        self.slowloris = None
        try:
            await self._run()
        finally:
            if self.slowloris is not None and self.slowloris.returncode is None:
                try:
                    os.killpg(self.slowloris.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    async def _run(self):
        a = self.a
        self.t0 = time.monotonic()
        mock = self.procs.start("mock", [a.bin, "mock-upstream", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0",
                                         "--tokens-per-second", "0", "--output-tokens", "20", "--threads", "2"])
        self.mock_url = (await self.procs.wait_for_line("mock", mock, r"listening on (http://\S+/v1)", 30)).group(1)
        self.check_config()
        await self.start_gateway()
        self.dropped_at_fill = 0
        monitor = asyncio.create_task(self.monitor())
        plan_end = [1e9]
        traffic = asyncio.create_task(self.traffic(lambda: plan_end[0]))
        self.mark("traffic_start")

        await asyncio.sleep(a.baseline)
        self.mark("attack_start")
        await self.start_slowloris()
        # Every connection has been tried once after the ramp; how many the gateway keeps open is its business.
        await self.wait_slowloris_open(int(a.connections * 0.98), a.connections / a.ramp_rate + a.ramp_grace)
        self.mark("attack_full")
        await asyncio.sleep(a.attack)
        if self.disk:
            await self.disk_phase()
            await asyncio.sleep(a.recovery)
        if a.kill:
            await self.kill_phase()
            await asyncio.sleep(a.after_kill)
        plan_end[0] = self.now()
        await traffic
        self.mark("traffic_end")
        # Requests still in flight and their feedback (bounded by the request timeout).
        deadline = self.now() + a.request_timeout * 2 + 5
        while self.pending and self.now() < deadline:
            await asyncio.sleep(0.1)
        self.traffic_on = False
        await self.stop_slowloris()
        self.mark("attack_end")
        await monitor
        self.sample_gateway()
        await self.scrape_metrics()
        self.sample_gateway()
        code = await asyncio.to_thread(self.procs.stop, self.gateway, 60)
        self.gateway_lives[-1]["exit_status"] = self.gateway.returncode
        self.mark("gateway_stopped")

    # ------------------------------------------------------------------ results
    def export(self):
        r = subprocess.run([self.a.bin, "export", "--db", self.store_path, "--include-qa"], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"bakeoff export failed ({r.returncode}): {r.stderr[-2000:]}")
        requests, feedback = {}, {}
        for line in r.stdout.splitlines():
            if not line.strip():
                continue
            e = json.loads(line)
            if e.get("event") == "request":
                requests[e.get("request_id")] = e
            elif e.get("event") == "feedback":
                if e.get("request_id"):
                    key = ("request", e["request_id"], e.get("name"))
                else:
                    key = ("conversation", e.get("conversation_id"), e.get("name"))
                feedback[key] = feedback.get(key, 0) + 1
        return requests, feedback


def in_window(rec, windows):
    """True when the request [sched, end] overlaps one of the windows."""
    end = rec.get("end", rec["sched"])
    return any(rec["sched"] <= hi and end >= lo for lo, hi in windows)


def analyse(s, stored_requests, stored_feedback):
    a = s.a
    ev = s.events
    chats = [c for c in s.chats if "end" in c]
    fbs = [f for f in s.feedback if "end" in f]
    served = [c for c in chats if c["ok"]]
    served_ids = {c["rid"]: c for c in served}
    lost = [c for rid, c in served_ids.items() if rid not in stored_requests]

    # Windows where failures are expected.
    # The disk window lasts until the store is seen healthy again: a store that retries with a growing backoff
    # may come back seconds after the file is removed, and the events answered until then are dropped and
    # counted (bakeoff_events_dropped_total), not lost silently. /healthz is sampled every 0.5 s: the window
    # runs to the first 200 after its last 503 there, plus the grace.
    disk_window = []
    if "disk_freed" in ev:
        disk_end = ev["disk_freed"] + a.disk_grace
        failing = [t for t, st in s.healthz if st == 503 and t >= ev["disk_full"] and t <= ev.get("kill", 1e9)]
        if failing:
            back = [t for t, st in s.healthz if st == 200 and t > max(failing)]
            disk_end = max(disk_end, (min(back) if back else max(failing) + 0.5) + a.disk_grace)
        disk_window = [(ev["disk_full"], min(disk_end, ev.get("kill", 1e9)))]
    kill_window = [(ev["kill"], ev["restarted"] + a.kill_grace)] if "kill" in ev else []
    windows = disk_window + kill_window

    # Documented loss: events of requests answered in the flush interval before the kill, and drops.
    life1 = s.gateway_lives[0]["metrics"] if s.gateway_lives else {}
    dropped_by_life = [int(l["metrics"].get("bakeoff_events_dropped_total", 0)) for l in s.gateway_lives]
    dropped = sum(dropped_by_life)
    kill_span = (a.flush_interval_ms + a.kill_slack_ms) / 1000
    # A response the killed process sent may reach the client a little after the kill (until the restart).
    kill_to = min(ev.get("restarted", 0), ev.get("kill", 0) + 0.5)
    at_kill = [c for c in served if "kill" in ev and ev["kill"] - kill_span <= c["end"] <= kill_to]
    lost_at_kill = [c for c in lost if "kill" in ev and ev["kill"] - kill_span <= c["end"] <= kill_to]
    lost_in_disk = [c for c in lost if c not in lost_at_kill and in_window(c, disk_window)]
    lost_other = [c for c in lost if c not in lost_at_kill and c not in lost_in_disk]
    allowed = len(at_kill) + dropped
    lost_ok = len(lost) <= allowed and not lost_other and len(lost_in_disk) <= dropped

    acked = [f for f in fbs if f["status"] == 200]
    acked_keys = {f["key"] for f in acked}
    found = [k for k in acked_keys if stored_feedback.get(k)]
    missing = sorted(k for k in acked_keys if not stored_feedback.get(k))
    sent_keys = {f["key"] for f in fbs}
    stored_unacked = sorted(k for k in sent_keys if stored_feedback.get(k) and k not in acked_keys)
    lost_rids = {c["rid"] for c in lost}

    # Normal requests outside the windows must succeed.
    chat_fail_outside = [c for c in chats if not c["ok"] and not in_window(c, windows)]
    fb_fail_outside = [f for f in fbs if f["status"] != 200 and not in_window(f, windows)
                       and not (f["status"] == 404 and f["target_rid"] in lost_rids)]
    fb_404_lost_target = [f for f in fbs if f["status"] == 404 and f["target_rid"] in lost_rids]

    # Phases for latency (chat requests only; a request belongs to the phase it was sent in).
    t_attack = ev.get("attack_start", 1e9)
    t_full = ev.get("attack_full", t_attack)
    t_attack_end = ev.get("traffic_end", 1e9)
    phases = {
        "baseline": lambda c: a.warmup <= c["sched"] < t_attack,
        "attack": lambda c: t_full <= c["sched"] < t_attack_end and not in_window(c, windows),
        "disk_full": lambda c: in_window(c, disk_window),
        "after_restart": lambda c: "restarted" in ev and c["sched"] >= ev["restarted"] + a.kill_grace,
    }
    latency = {}
    for name, pred in phases.items():
        sel = [c for c in chats if pred(c)]
        ok = [c for c in sel if c["ok"]]
        q = quantiles([(c["end"] - c["sched"]) * 1000 for c in ok])
        q.update(sent=len(sel), ok=len(ok),
                 stream=quantiles([(c["end"] - c["sched"]) * 1000 for c in ok if c["stream"]]),
                 non_stream=quantiles([(c["end"] - c["sched"]) * 1000 for c in ok if not c["stream"]]))
        latency[name] = q

    # Healthz during the disk window.
    h503 = [t for t, st in s.healthz if st == 503]
    healthz_503_span = (min(h503), max(h503)) if h503 else None
    fb_by_status = {}
    for f in fbs:
        k = str(f["status"] or f["error"]) + (f"/{f['code']}" if f.get("code") else "")
        fb_by_status[k] = fb_by_status.get(k, 0) + 1
    chat_by_status = {}
    for c in chats:
        k = str(c["status"] or c["error"]) + ("" if c["ok"] or not c["status"] == 200 else "/incomplete")
        chat_by_status[k] = chat_by_status.get(k, 0) + 1
    chat_fail_windows = {}
    for name, w in (("disk", disk_window), ("kill", kill_window)):
        sel = [c for c in chats if in_window(c, w)]
        chat_fail_windows[name] = {"sent": len(sel), "failed": sum(1 for c in sel if not c["ok"])}

    peak_hwm = max((l["hwm_kb"] for l in s.gateway_lives), default=0)
    invariants = {
        "feedback_acked_equals_found": len(missing) == 0,
        "request_events_lost_within_window": lost_ok,
        "requests_outside_windows_succeed": not chat_fail_outside and not fb_fail_outside,
    }
    sl = s.slowloris_final or (s.slowloris_samples[-1] if s.slowloris_samples else {})
    return {
        "requests": {"sent": len(chats), "served": len(served), "by_status": chat_by_status,
                     "stored": len(stored_requests), "stored_of_served": len(served) - len(lost),
                     "lost": len(lost), "lost_at_kill": len(lost_at_kill), "lost_in_disk_window": len(lost_in_disk),
                     "lost_other": len(lost_other),
                     "lost_other_ids": [c["rid"] for c in lost_other][:20],
                     "lost_other_examples": [{k: round(c[k], 3) if isinstance(c.get(k), float) else c.get(k)
                                              for k in ("rid", "sched", "end")} for c in lost_other][:20],
                     "served_in_flush_window_before_kill": len(at_kill), "kill_window_ms": kill_span * 1000,
                     "dropped_by_gateway": dropped, "dropped_by_life": dropped_by_life, "allowed_loss": allowed,
                     "failed_outside_windows": len(chat_fail_outside),
                     "failed_outside_examples": [{k: c.get(k) for k in ("i", "sched", "end", "status", "error")}
                                                 for c in chat_fail_outside[:10]],
                     "in_windows": chat_fail_windows},
        "feedback": {"sent": len(fbs), "acked": len(acked), "found": len(found), "missing": [list(k) for k in missing][:50],
                     "stored_not_acked": len(stored_unacked), "by_status": fb_by_status,
                     "not_found_404_target_lost": len(fb_404_lost_target),
                     "failed_outside_windows": len(fb_fail_outside),
                     "failed_outside_examples": [{k: f.get(k) for k in ("key", "sched", "end", "status", "error", "code")}
                                                 for f in fb_fail_outside[:10]]},
        "latency_ms": latency,
        "peak_rss_kib": peak_hwm,
        "gateway_lives": s.gateway_lives,
        "disk_window": disk_window[0] if disk_window else None,
        "kill_window": kill_window[0] if kill_window else None,
        "healthz_503_span": healthz_503_span,
        "healthz_503_count": len(h503),
        "store_failing_seen_after_fill_s": (round(s.store_failing_seen_at - ev["disk_full"], 2)
                                            if s.store_failing_seen_at is not None and "disk_full" in ev else None),
        "slowloris": sl,
        "slowloris_peak_open": max((x.get("open", 0) for x in s.slowloris_samples), default=0),
        "gateway_connections_open_peak": max((v["bakeoff_http_connections_open"] for _t, _l, v in s.metrics_samples
                                              if "bakeoff_http_connections_open" in v), default=None),
        "windows": {"disk": disk_window, "kill": kill_window},
        "invariants": invariants,
        "ok": all(invariants.values()),
    }


# ============================================================================================ output
def fmt_ms(x):
    return "—" if x is None else (f"{x:,.2f} ms" if x < 10 else f"{x:,.1f} ms")


def render_table(res):
    r = res["results"]
    rq, fb, lat = r["requests"], r["feedback"], r["latency_ms"]
    ev = res["events"]
    lines = []

    def row(k, v):
        lines.append(f"  {k:<48} {v}")
    lines.append("Gateway soak" + (" (short)" if res["settings"]["short"] else ""))
    row("requests sent / served (200)", f"{rq['sent']:,} / {rq['served']:,}  {rq['by_status']}")
    row("request events stored (of served)", f"{rq['stored_of_served']:,}")
    row("request events lost", f"{rq['lost']:,} (at kill {rq['lost_at_kill']}, in disk-full window "
        f"{rq['lost_in_disk_window']}, other {rq['lost_other']})")
    row("documented window", f"{rq['allowed_loss']:,} = {rq['served_in_flush_window_before_kill']} answered in the "
        f"{rq['kill_window_ms']:.0f} ms before the kill + {rq['dropped_by_gateway']} dropped (events_dropped_total)")
    row("feedback sent / acknowledged (200) / found", f"{fb['sent']:,} / {fb['acked']:,} / {fb['found']:,}"
        + (f"  MISSING {fb['missing'][:5]}" if fb["missing"] else ""))
    row("feedback by status", f"{fb['by_status']}; stored but not acked: {fb['stored_not_acked']}")
    per_life = ", ".join(f"{l['hwm_kb'] / 1024:.1f}" for l in r["gateway_lives"])
    row("peak RSS of the gateway (VmHWM)", f"{r['peak_rss_kib'] / 1024:,.1f} MiB (per process: {per_life} MiB)")
    row("gateway descriptors, peak", ", ".join(str(l["fds_peak"]) for l in r["gateway_lives"]))
    sl = r["slowloris"]
    row("slowloris: open at peak / opened / closed by server",
        f"{r['slowloris_peak_open']:,} / {sl.get('opened', 0):,} / {sl.get('closed_by_server', 0):,} "
        f"(at once {sl.get('closed_at_once', 0):,}, answered {sl.get('answers', {})}, connect failed "
        f"{sl.get('connect_failed', 0):,})")
    for name in ("baseline", "attack", "disk_full", "after_restart"):
        q = lat[name]
        row(f"latency {name} (ok/sent) p50 / p95 / p99",
            f"{q['ok']}/{q['sent']}  {fmt_ms(q['p50'])} / {fmt_ms(q['p95'])} / {fmt_ms(q['p99'])}")
    row("healthz 503 samples (span)", f"{r['healthz_503_count']} {r['healthz_503_span']}")
    row("store failing seen after the fill", f"{r['store_failing_seen_after_fill_s']} s")
    row("timeline (s)", ", ".join(f"{k} {v:.1f}" for k, v in ev.items()))
    for k, v in r["invariants"].items():
        row(f"invariant {k}", "yes" if v else "NO")
    return "\n".join(lines)


def render_markdown(res):
    r = res["results"]
    rq, fb, lat, st = r["requests"], r["feedback"], r["latency_ms"], res["settings"]
    ev, m, v = res["events"], res["machine"], res["versions"]
    sl = r["slowloris"]
    md = [SECTION_TITLE + "\n"]
    md.append(f"Written by `{res['command']}` (`scripts/bench/soak.py`) on {res['date']}"
              + (" — **short run** (the `make test` configuration)" if st["short"] else "") + ".\n")
    md.append(f"- Machine: {m['nproc']} cores, `{m['cpu_model']}`, {m['kernel']}; load average "
              f"{' '.join(m['loadavg_start'])} at start, {' '.join(m.get('loadavg_end', []))} at the end (shared machine; the "
              f"slowloris client used {r['slowloris'].get('cpu_s', '?')} s of CPU).")
    md.append(f"- Bakeoff commit {v['bakeoff_commit']}{' with uncommitted changes' if v['bakeoff_dirty'] else ''} "
              f"(binary sha256 {v['bakeoff_sha256']}…); Python {platform.python_version()} clients.")
    disk = (f"store on a {st['tmpfs_mb']} MiB tmpfs" if res["disk"] else
            f"store on the ordinary disk: **disk phase skipped** ({res.get('disk_skipped_reason')})")
    md.append(f"- Run: {res['elapsed_s']:.0f} s; {st['rate']:g} chat requests/s (half streaming, {st['turns']} turns per "
              f"conversation) plus feedback; {st['connections']:,} slowloris connections from {st['addresses']} "
              f"addresses; {disk}; `flush_interval_ms` {st['flush_interval_ms']}"
              + (f", `queue_capacity` {st['queue_capacity']:,}" if st["queue_capacity"] else "")
              + f", {st['gateway_threads']} HTTP threads"
              + (f", `max_connections_per_address` {st['per_address_limit']}" if res.get("per_address_limit_applied") else
                 " (this gateway has no per-address limit)" if st["per_address_limit"] is not None else "")
              + ", other settings default"
              + (f"; `serve --check` says: {res['limits_line']}" if res.get("limits_line") else "") + ".\n")
    all_ok = r["ok"]
    fb_503 = fb["by_status"].get("503/store_unavailable", 0)
    md.append("| Figure | Value |\n| --- | --- |")
    md.append(f"| Chat requests sent / served (200) | {rq['sent']:,} / {rq['served']:,} |")
    md.append(f"| Request events stored, of those served | {rq['stored_of_served']:,} |")
    md.append(f"| Request events lost | **{rq['lost']:,}** ({rq['lost_at_kill']} at the kill -9, "
              f"{rq['lost_in_disk_window']} while the disk was full, {rq['lost_other']} elsewhere) |")
    md.append(f"| Documented window | {rq['allowed_loss']:,}: {rq['served_in_flush_window_before_kill']} answered in the "
              f"{rq['kill_window_ms']:.0f} ms before the kill (flush interval + {st['kill_slack_ms']} ms) + "
              f"{rq['dropped_by_gateway']:,} dropped and counted by the gateway (`bakeoff_events_dropped_total`)"
              + (f"; {fb_503:,} of those are the feedback answered 503 while the disk was full, so at most "
                 f"{max(0, rq['dropped_by_gateway'] - fb_503):,} request events" if fb_503 else "") + " |")
    missing = (" — missing: " + ", ".join(":".join(k) for k in fb["missing"][:5])) if fb["missing"] else ""
    md.append(f"| Feedback sent / acknowledged (200) / found in the store | {fb['sent']:,} / **{fb['acked']:,}** / "
              f"**{fb['found']:,}**{missing} |")
    answers = ", ".join(f"{k}: {n:,}" for k, n in sorted(fb["by_status"].items()))
    md.append(f"| Feedback answers | {answers} "
              f"({fb['not_found_404_target_lost']} 404s name a request whose event was lost at the kill; "
              f"{fb['stored_not_acked']} stored without a 200 reaching the client) |")
    per_life = " / ".join(f"{l['hwm_kb'] / 1024:.1f}" for l in r["gateway_lives"])
    fds = " / ".join(f"{l['fds_peak']:,}" for l in r["gateway_lives"])
    md.append(f"| Peak RSS of the gateway (VmHWM) | **{r['peak_rss_kib'] / 1024:,.1f} MiB** (before / after the kill: "
              f"{per_life} MiB) |")
    md.append(f"| Slowloris connections open at peak (client side) / gateway descriptors at peak (before / after "
              f"the kill) | {r['slowloris_peak_open']:,} / {fds} |")
    gauge = r.get("gateway_connections_open_peak")
    md.append(f"| Slowloris connections opened / closed by the gateway | {sl.get('opened', 0):,} / "
              f"{sl.get('closed_by_server', 0):,} ({sl.get('closed_at_once', 0):,} of them within 1 s of opening); "
              f"median lifetime {sl.get('lifetime_p50_s') or '—'} s; the gateway answered "
              f"{sl.get('answers') or 'none of them'} before closing"
              + (f"; `bakeoff_http_connections_open` peaked at {gauge:,.0f}" if gauge is not None else "") + " |")
    if res["disk"]:
        span = r["healthz_503_span"]
        md.append(f"| Disk full | {ev['disk_freed'] - ev['disk_full']:.1f} s; store failure visible after "
                  f"{r['store_failing_seen_after_fill_s'] if r['store_failing_seen_after_fill_s'] is not None else '— (never)'} s; "
                  f"`/healthz` 503 in {r['healthz_503_count']} samples"
                  + (f" (t = {span[0]:.1f}–{span[1]:.1f} s)" if span else "") + " |")
    if "kill" in ev:
        lives = r["gateway_lives"]
        md.append(f"| Restart after kill -9 | ready {lives[1]['ready'] - ev['kill']:.2f} s after the kill |")
    md.append(f"| Invariants | {'all hold' if all_ok else '**NOT ALL HOLD**'}: "
              + "; ".join(f"{k.replace('_', ' ')}: {'yes' if ok else '**NO**'}" for k, ok in r["invariants"].items())
              + " |\n")
    md.append("Latency of normal chat requests (open loop, from the scheduled send to the end of the answer, "
              "successful answers only; a request belongs to the phase it was sent in):\n")
    md.append("| Phase | Answered / sent | p50 | p95 | p99 | max |\n| --- | --- | --- | --- | --- | --- |")
    names = {"baseline": "Baseline, no attack", "attack": f"Under attack ({st['connections']:,} slowloris), outside the "
             "disk-full and kill windows", "disk_full": "Disk full (and the recovery grace)",
             "after_restart": "After the restart (under attack)"}
    for name, label in names.items():
        q = lat[name]
        if q["sent"] == 0:
            continue
        md.append(f"| {label} | {q['ok']:,} / {q['sent']:,} | {fmt_ms(q['p50'])} | {fmt_ms(q['p95'])} | "
                  f"{fmt_ms(q['p99'])} | {fmt_ms(q['max'])} |")
    md.append("")
    md.append("Timeline (s from start): " + ", ".join(f"{k.replace('_', ' ')} {t:.1f}" for k, t in ev.items()) + ".\n")
    md.append(
        "How: `bakeoff mock-upstream` (answers at once) behind `bakeoff serve` with one experiment (split 0.5). "
        "Normal traffic comes from 127.0.0.1 on a fixed schedule (open loop, a new connection per request); every "
        "third request gets `thumbs_up` feedback and every conversation `task_completed`, with the user in the body "
        "and in `X-Bakeoff-User`. The slowloris client (one asyncio process) binds its sockets to 127.0.0.2 and up, "
        "sends a request line and then one header line every "
        f"{st['trickle']:g} s (±25%), never ending the headers, and reopens every connection the gateway closes "
        "(backing off while it is refused at once). The disk phase writes a file into the store's tmpfs until "
        "ENOSPC, holds it until the gateway shows the store failing (a feedback 503, `/healthz` 503 or a rising "
        f"drop counter; at most {st['disk_wait_max']:g} s) and {st['disk_hold']:g} s more, then deletes it. The "
        "gateway is then killed with SIGKILL and restarted on the same store and port. At the end it gets SIGTERM "
        "and `bakeoff export --db STORE --include-qa` is compared with what the clients were answered: lost "
        "request events are served request ids missing from the store; feedback is matched by (request id or "
        "conversation id, name). Every request sent outside the disk-full window (+"
        f"{st['disk_grace']:g} s) and the kill window (kill to restart +{st['kill_grace']:g} s) must succeed. "
        "Raw figures: `out/bench/soak.json`.\n")
    md.append("Reproduce: `BENCH_ONLY=soak make bench` (as root for the tmpfs); `make bench` runs it after the "
              "other benchmarks; `make test` runs the short version (`e2e/gateway/test_soak.py`). Settings: "
              "`scripts/bench/soak.py --help`.\n")
    return "\n".join(md)


def machine_info():
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "kernel": platform.uname()[2],
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


def versions(binary):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def sh(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"bakeoff_commit": sh(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
            "bakeoff_dirty": bool(sh(["git", "status", "--porcelain", "--untracked-files=no"])),
            "bakeoff_sha256": sh(["sha256sum", binary]).split(" ")[0][:16]}


# ============================================================================================ main
def mount_tmpfs(path, size_mb):
    """Mounts a tmpfs at path; returns None, or why it could not."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        return "not root (mounting a tmpfs needs root)"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"mount refused: {r.stderr.strip() or r.returncode}"
    return None


def umount(path):
    for _ in range(10):
        r = subprocess.run(["umount", path], capture_output=True, text=True)
        if r.returncode == 0:
            return True
        time.sleep(0.5)
    log(f"could not unmount {path}: {r.stderr.strip()}")
    return False


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--render", metavar="JSON", help="only print the table (and write --markdown) of a saved run")
    p.add_argument("--bin", default=os.environ.get("BAKEOFF_BIN", ".build/product/release/bakeoff"))
    p.add_argument("--out", default=os.environ.get("BENCH_OUT", "out/bench"))
    p.add_argument("--markdown", help="write the section into this Markdown file")
    p.add_argument("--json", help="where to write the results (default OUT/soak.json)")
    p.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "BENCH_ONLY=soak make bench"))
    p.add_argument("--short", action="store_true", help="the small configuration of `make test` (~40 s)")
    p.add_argument("--rate", type=float, help="chat requests per second (full 50, short 20)")
    p.add_argument("--stream-share", type=float, default=0.5)
    p.add_argument("--turns", type=int, default=3, help="requests per conversation")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--connections", type=int, help="slowloris connections (full 5000, short 1000)")
    p.add_argument("--addresses", type=int, help="source addresses 127.0.0.2... (full 50, short 10)")
    p.add_argument("--trickle", type=float, default=10.0, help="seconds between header lines")
    p.add_argument("--ramp-rate", type=float, default=1000.0, help="slowloris connections opened per second")
    p.add_argument("--ramp-grace", type=float, default=2.0,
                   help="after the ramp, at most this long waiting for the connections to be open")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds at the start left out of the baseline latency")
    p.add_argument("--baseline", type=float, help="seconds of traffic before the attack (full 30, short 5)")
    p.add_argument("--attack", type=float, help="seconds under attack before the disk fills (full 60, short 6)")
    p.add_argument("--disk-hold", type=float, help="seconds the disk stays full after the store is seen failing (full 10, short 3)")
    p.add_argument("--disk-wait-max", type=float, help="at most this long waiting for the store to fail (full 30, short 12)")
    p.add_argument("--disk-grace", type=float, default=3.0, help="seconds after freeing the disk still in its window")
    p.add_argument("--recovery", type=float, help="seconds between freeing the disk and the kill (full 15, short 4)")
    p.add_argument("--after-kill", type=float, help="seconds of traffic after the restart (full 30, short 6)")
    p.add_argument("--kill-grace", type=float, default=1.0, help="seconds after the restart still in the kill window")
    p.add_argument("--kill-slack-ms", type=int, default=100, help="added to the flush interval for the loss window")
    p.add_argument("--no-disk", action="store_true", help="skip the disk-full phase (store not on a tmpfs)")
    p.add_argument("--no-kill", dest="kill", action="store_false", help="skip the kill -9")
    p.add_argument("--tmpfs-mb", type=int, default=48)
    p.add_argument("--flush-interval-ms", type=int, default=50)
    p.add_argument("--queue-capacity", type=int,
                   help="the store's queue_capacity (full: the gateway's default; short: 64, so that the full disk "
                        "also fills the queue and events are dropped and counted)")
    p.add_argument("--gateway-threads", type=int, default=2)
    p.add_argument("--per-address-limit", type=int, default=-1,
                   help="set the gateway's max_connections_per_address (left out for gateways without it); "
                        "default -1: the gateway's own default")
    p.add_argument("--request-timeout", type=float, default=10.0)
    a = p.parse_args(argv)
    if a.render:
        with open(a.render) as fh:
            res = json.load(fh)
        print(render_table(res))
        if a.markdown:
            from bench_md import write_section
            write_section(a.markdown, render_markdown(res), SECTION_TITLE)
        return 0 if res["results"]["ok"] else 1
    full = not a.short
    for key, full_v, short_v in (("rate", 50, 20), ("connections", 5000, 1000), ("addresses", 50, 10),
                                 ("baseline", 30, 5), ("attack", 60, 6), ("disk_hold", 10, 3),
                                 ("disk_wait_max", 30, 12), ("recovery", 15, 4), ("after_kill", 30, 6)):
        if getattr(a, key) is None:
            setattr(a, key, full_v if full else short_v)
    a.max_seconds = 900
    if a.queue_capacity is None and a.short:
        a.queue_capacity = 64
    if a.per_address_limit is not None and a.per_address_limit < 0:
        a.per_address_limit = None
    a.bin = os.path.abspath(a.bin)
    if not os.access(a.bin, os.X_OK):
        print(f"soak.py: {a.bin} not found (make build)", file=sys.stderr)
        return 2
    limit = raise_fd_limit()
    if limit < a.connections + 1024:
        print(f"soak.py: the open-file limit is {limit}; {a.connections} connections need more (ulimit -n)", file=sys.stderr)
        return 2

    os.makedirs(a.out, exist_ok=True)
    workdir = os.path.join(os.path.abspath(a.out), "soak-short" if a.short else "soak")
    store_dir = os.path.join(workdir, "store")
    if os.path.ismount(store_dir):
        umount(store_dir)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    disk_reason = "--no-disk" if a.no_disk else mount_tmpfs(store_dir, a.tmpfs_mb)
    mounted = disk_reason is None
    os.makedirs(store_dir, exist_ok=True)
    if not mounted:
        log(f"disk phase skipped: {disk_reason}")

    procs = Processes(workdir)
    soak = Soak(a, procs, workdir)
    soak.disk = mounted
    soak.store_dir = store_dir
    soak.store_path = os.path.join(store_dir, "soak.db")
    soak.filler_path = os.path.join(store_dir, "filler.bin")
    soak.config_path = os.path.join(workdir, "gateway.json")

    def on_signal(signum, _frame):
        raise SystemExit(f"soak.py: signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    res = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": a.command, "machine": machine_info(), "versions": versions(a.bin), "disk": mounted,
           "disk_skipped_reason": disk_reason,
           "settings": {k: getattr(a, k) for k in ("short", "rate", "stream_share", "turns", "users", "connections",
                                                 "addresses", "trickle", "ramp_rate", "baseline", "attack", "disk_hold",
                                                 "disk_wait_max", "disk_grace", "recovery", "after_kill", "kill_grace",
                                                 "kill_slack_ms", "kill", "tmpfs_mb", "flush_interval_ms",
                                                 "queue_capacity", "gateway_threads", "per_address_limit",
                                                 "request_timeout")}}
    log(f"{'short' if a.short else 'full'} soak: {a.rate:g} req/s, {a.connections} slowloris connections from "
        f"{a.addresses} addresses, store {'on a ' + str(a.tmpfs_mb) + ' MiB tmpfs' if mounted else 'on disk'}")
    t_start = time.monotonic()
    try:
        try:
            asyncio.run(soak.run())
        finally:
            procs.stop_all()
        stored_requests, stored_feedback = soak.export()
        res["events"] = soak.events
        res["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        res["per_address_limit_applied"] = soak.per_address_supported and a.per_address_limit is not None
        res["limits_line"] = soak.limits_line
        res["elapsed_s"] = round(time.monotonic() - t_start, 1)
        res["results"] = analyse(soak, stored_requests, stored_feedback)
        res["samples"] = {"slowloris": [[x["t"], x["open"], x["opened"], x["closed_by_server"]] for x in soak.slowloris_samples],
                          "healthz": soak.healthz,
                          "metrics": [[t, life, {k: v for k, v in vals.items() if k.startswith(("bakeoff_store", "bakeoff_events",
                                                                                               "bakeoff_http"))}]
                                      for t, life, vals in soak.metrics_samples]}
        res["stderr_tail"] = {name: procs.stderr_text(name)[-2000:] for name in
                              ["mock"] + [f"gateway-{i + 1}" for i in range(len(soak.gateway_lives))]}
    finally:
        if mounted:
            if os.path.exists(soak.filler_path):
                os.remove(soak.filler_path)
            # Keep the store for inspection: copy it out of the tmpfs before unmounting.
            for name in os.listdir(store_dir):
                if name.startswith("soak.db"):
                    shutil.copy2(os.path.join(store_dir, name), os.path.join(workdir, name))
            umount(store_dir)
    path = a.json or os.path.join(a.out, "soak-short.json" if a.short else "soak.json")
    with open(os.path.splitext(path)[0] + "-requests.jsonl", "w") as fh:
        for c in soak.chats:
            fh.write(json.dumps({k: c.get(k) for k in ("i", "sched", "end", "status", "error", "ok", "stream", "rid")}) + "\n")
        for f in soak.feedback:
            fh.write(json.dumps({"feedback": list(f["key"]), **{k: f.get(k) for k in ("sched", "end", "status", "error", "code")}}) + "\n")
    with open(path, "w") as fh:
        json.dump(res, fh, indent=1, default=str)
    print(render_table(res))
    log(f"wrote {path}")
    if a.markdown:
        from bench_md import write_section
        write_section(a.markdown, render_markdown(res), SECTION_TITLE)
        log(f"wrote the section into {a.markdown}")
    return 0 if res["results"]["ok"] else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "slowloris":
        slowloris_main(sys.argv[2:])
    else:
        try:
            sys.exit(main(sys.argv[1:]))
        except RuntimeError as e:
            print(f"soak.py: {e}", file=sys.stderr)
            sys.exit(2)
