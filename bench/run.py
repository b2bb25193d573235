#!/usr/bin/env python3
"""The benchmark targets of bench/README.md, run side by side on this machine.

Called by bench/run.sh (which installs nginx, wrk and lychee and builds the
release binary). Everything listens on 127.0.0.1. Prints one table of
ratios with PASS/MISS, then the raw figures.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CORES = os.cpu_count()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_for(what, check, seconds=600):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def page(i):
    """The first corpus's page, kept for continuity (and served for any path
    that is no article): about 130 KB, a long navigation menu, inline
    scripts, one article of several paragraphs, absolute links to a host that
    is no configured base, the same bytes on every base."""
    nav = "".join(f'<li><a href="https://news.example/section/{k}">Section {k}</a></li>\n' for k in range(600))
    script = "<script>window.cfg=" + json.dumps({"ads": list(range(3000)), "rendered": 1485250000}) + ";</script>\n"
    paragraphs = "".join(
        f"<p>Paragraph {p} of article {i}: the quick brown fox jumps over the lazy dog, "
        f"as reported by the correspondent on the scene. " * 3 + "</p>\n"
        for p in range(12)
    )
    related = "".join(f'<li><a href="https://news.example/Detail/{i}/{k}">Related story {k}</a></li>\n' for k in range(700))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Article {i}</title>{script}{script}</head><body>\n"
        f"<nav><ul>{nav}</ul></nav>\n<article><h1>Article {i}</h1>\n{paragraphs}</article>\n"
        f"<aside><ul>{related}</ul></aside><footer>Also at alternate addresses.</footer></body></html>\n"
    )


# What each of the four bases is, in order: the primary, two mirrors that
# serve the site under their own host (a proxy, a synced copy), and a
# crawler's copy with page-relative links.
ROLES = ("primary", "proxy", "synced", "crawler")


def json_escaped(text):
    """As PHP's json_encode writes URLs into inline scripts: `\\/` for `/`."""
    return json.dumps(text).replace("/", "\\/")


def realistic_page(i, origin, role, primary_origin):
    """A news page of about 130 KB as `role` serves it from `origin`: every
    absolute link carries that base's own origin (also `//host` and
    JSON-escaped in inline scripts), mirrors add a banner and scripts of
    their own, and the crawler's copy links page-relative."""
    host = origin.split("://", 1)[1]
    crawler = role == "crawler"

    def link(path, n):
        if crawler:
            return f"../{path.strip('/')}.html"
        # Every third link protocol-relative, as templates often write them.
        return f"//{host}{path}" if n % 3 == 0 else f"{origin}{path}"

    nav = "".join(f'<li><a href="{link(f"/section/{k}", k)}">Section {k}</a></li>\n' for k in range(600))
    # A crawler copies scripts as they were: the primary's origin stays in them.
    script_origin = primary_origin if crawler else origin
    config = {"ads": list(range(2400)), "rendered": 1485250000}
    urls = ",".join(json_escaped(f"{script_origin}/Detail/{i}/{k}") for k in range(40))
    script = (
        "<script>window.cfg=" + json.dumps(config) + ";window.related=[" + urls + "];"
        f"window.canonical={json_escaped(f'{script_origin}/news/{i}.html')};</script>\n"
    )
    extra = ""
    banner = ""
    if role == "proxy":
        extra = f"<script src=\"{origin}/proxy/inject.js?v=3\"></script><script>var _mirror={{'id':'p1'}};</script>\n"
        banner = f'<div class="mirror-banner">You are reading a mirror of this site at {host}.</div>\n'
    elif role == "synced":
        extra = "<script>(function(){var a=document.createElement('script');a.src='https://stats.example.net/a.js';})();</script>\n"
        banner = '<div id="notice">This website can also be accessed at the following alternate addresses.</div>\n'
    paragraphs = "".join(
        f"<p>Paragraph {p} of article {i}: the quick brown fox jumps over the lazy dog, "
        f"as reported by the correspondent on the scene. " * 3 + "</p>\n"
        for p in range(12)
    )
    images = "".join(f'<img src="{link(f"/images/{i}/{k}", k)}" alt="Photo {k}">' for k in range(4))
    related = "".join(f'<li><a href="{link(f"/Detail/{i}/{k}", k)}">Related story {k}</a></li>\n' for k in range(700))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Article {i}</title>"
        f'<link rel="canonical" href="{link(f"/news/{i}", 1)}">{script}{script}{extra}</head><body>\n{banner}'
        f"<nav><ul>{nav}</ul></nav>\n<article><h1>Article {i}</h1>\n{images}{paragraphs}</article>\n"
        f"<aside><ul>{related}</ul></aside><footer>Also at alternate addresses.</footer></body></html>\n"
    )


def write_corpus(root, n, origins):
    """One directory per base role; `origins[role]` is that base's origin."""
    primary = origins[0]
    for index, role in enumerate(ROLES):
        os.makedirs(f"{root}/{role}/news", exist_ok=True)
        for i in range(n):
            with open(f"{root}/{role}/news/{i}.html", "w") as f:
                f.write(realistic_page(i, origins[index], role, primary))
        # Any other article path gets the first corpus's page.
        with open(f"{root}/{role}/page.html", "w") as f:
            f.write(page(-1))
        # The redirect target's 100,000 articles: their first round only has
        # to establish candidates, so they are small.
        with open(f"{root}/{role}/tiny.html", "w") as f:
            f.write("<!DOCTYPE html><html><body><article><p>short</p></article></body></html>\n")


class Nginx:
    """One worker, pinned to core 0: four ports serving the corpus as the
    four bases, and one answering `return 302` for the redirect comparison."""

    def __init__(self, work, root, articles):
        self.bases = [free_port() for _ in range(4)]
        # The same four bases again, but without validators: no ETag, and
        # If-Modified-Since ignored, so every answer is a full 200. They
        # serve the same files, so their links carry the other four's
        # origins.
        self.plain = [free_port() for _ in range(4)]
        self.redirect = free_port()
        write_corpus(root, articles, [f"http://127.0.0.1:{p}" for p in self.bases])
        servers = "".join(
            f"server {{ listen 127.0.0.1:{p}; root {root}/{role}; location / {{ try_files $uri /page.html; }} "
            f"location /tiny/ {{ try_files /tiny.html =404; }} }}\n"
            for p, role in zip(self.bases, ROLES)
        )
        servers += "".join(
            f"server {{ listen 127.0.0.1:{p}; root {root}/{role}; etag off; if_modified_since off; "
            f"location / {{ try_files $uri /page.html; }} }}\n"
            for p, role in zip(self.plain, ROLES)
        )
        servers += (
            f"server {{ listen 127.0.0.1:{self.redirect}; "
            f"location / {{ return 302 http://127.0.0.1:{self.bases[0]}$request_uri; }} }}\n"
        )
        conf = f"""user root; worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 8192; }}
http {{ access_log off; sendfile on; keepalive_requests 1000000; default_type text/html;
{servers}}}
"""
        with open(f"{work}/nginx.conf", "w") as f:
            f.write(conf)
        self.process = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", f"{work}/nginx.conf"])
        wait_for("nginx", lambda: get(f"http://127.0.0.1:{self.bases[0]}/news/0.html"), 30)

    def stop(self):
        self.process.terminate()
        self.process.wait()


def mirrorgate_config(path, nginx, articles, store, probe=None, server="", backend="sqlite", prefix="/news",
                      validators=True, extra="", store_url=None, instance=None):
    bases = [f"http://127.0.0.1:{p}" for p in (nginx.bases if validators else nginx.plain)]
    settings = {"interval": '"1h"', "timeout": '"10s"', "concurrency": "64", "per_host_rate": "0", **(probe or {})}
    with open(path, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{free_port()}"\n{server}\n')
        if store_url:
            f.write(f'[store]\nurl = "{store_url}"\ninstance = "{instance}"\n\n')
        else:
            f.write(f'[store]\nbackend = "{backend}"\npath = "{store}"\n\n')
        f.write("[probe]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()) + "\n")
        f.write(f'[[sites]]\nname = "news"\nprimary = "{bases[0]}"\nmirrors = {json.dumps(bases[1:])}\n')
        f.write('content_selector = "article"\narticles = [\n')
        f.writelines(f'"{prefix}/{i}.html",\n' for i in range(articles))
        f.write("]\n")
        f.write(extra)
    with open(path) as f:
        listen = re.search(r'listen = "([^"]+)"', f.read()).group(1)
    return f"http://{listen}"


class Daemon:
    def __init__(self, binary, config, url, env=None, core=None):
        command = [binary, "run", "--config", config]
        if core is not None:
            command = ["taskset", "-c", str(core)] + command
        self.started = time.time()
        self.log = open(f"{config}.log", "w")
        self.process = subprocess.Popen(
            command, env={**os.environ, "RUST_LOG": "warn", **(env or {})}, stderr=self.log
        )
        self.url = url

        def ready():
            if self.process.poll() is not None:
                sys.exit(f"the daemon exited ({self.process.returncode}); see {config}.log")
            return get(f"{url}/healthz")

        wait_for("the daemon", ready, 120)
        self.ready_after = time.time() - self.started

    def status(self):
        return json.loads(get(f"{self.url}/status", 30))

    def rounds(self):
        return self.status()["round"]["completed"]

    def wait_rounds(self, n, seconds=900):
        wait_for(f"{n} rounds", lambda: self.rounds() >= n, seconds)
        return self.status()["round"]["last_duration_ms"] / 1000

    def round_durations(self, n, seconds=900):
        """The durations (s) of rounds 1..n, read as each one completes."""
        durations, deadline = {}, time.time() + seconds
        while len(durations) < n and time.time() < deadline:
            try:
                status = self.status()["round"]
                done = status["completed"]
                if 1 <= done <= n and done not in durations and status["last_duration_ms"] is not None:
                    durations[done] = status["last_duration_ms"] / 1000
            except Exception:
                pass
            time.sleep(0.05)
        missing = [k for k in range(1, n + 1) if k not in durations]
        if missing:
            sys.exit(f"rounds {missing} were not observed")
        return [durations[k] for k in range(1, n + 1)]

    def next_round(self):
        """SIGHUP reloads the config and starts a round at once."""
        n = self.rounds()
        self.process.send_signal(signal.SIGHUP)
        return n + 1

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self):
        self.process.terminate()
        self.process.wait()


def wrk(url, seconds=10, headers=()):
    """wrk -t1 -c64 on core 1: requests/s and p99 latency (ms)."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s", "--latency"]
        + [arg for header in headers for arg in ("-H", header)] + [url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    non3xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, int(non3xx.group(1)) if non3xx else 0


def timed(command):
    """Wall seconds and peak RSS (KiB) of a command, by GNU time."""
    started = time.time()
    result = subprocess.run(["/usr/bin/time", "-v"] + command, capture_output=True, text=True)
    wall = time.time() - started
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return wall, peak, result.returncode


def cpu_flags_and_model():
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def cpu_model():
    return cpu_flags_and_model()[0]


def has_sha_extensions():
    # x86's SHA-NI; ARM's sha2 feature shows as "sha2" in Features.
    return "sha_ni" in cpu_flags_and_model()[1]


class Report:
    def __init__(self):
        self.rows, self.raw = [], []

    def ratio(self, name, value, target, higher_is_better):
        ok = value >= target if higher_is_better else value <= target
        sign = ">=" if higher_is_better else "<="
        self.rows.append((name, f"{value:.2f}x", f"{sign} {target}x", "PASS" if ok else "MISS"))
        print(f"{name}: {value:.2f}x (target {sign} {target}x)", file=sys.stderr)

    def figure(self, name, value, target_text, ok):
        self.rows.append((name, value, target_text, "PASS" if ok else "MISS"))
        print(f"{name}: {value} (target {target_text})", file=sys.stderr)

    def add_raw(self, line):
        """A raw figure, shown at once too: a later target that fails must
        not take it with it."""
        self.raw.append(line)
        print(line, file=sys.stderr)

    def print(self):
        print(f"\nmirrorgate benchmarks — {time.strftime('%Y-%m-%d %H:%M %Z')}, {CORES} cores")
        print(f"CPU: {cpu_model()}; SHA extensions: {'yes (sha_ni)' if has_sha_extensions() else 'no'}\n")
        print(f"| {'target':<58} | {'measured':>14} | {'target':>12} | result |")
        print(f"|{'-' * 60}|{'-' * 16}|{'-' * 14}|--------|")
        for name, value, target, verdict in self.rows:
            print(f"| {name:<58} | {value:>14} | {target:>12} | {verdict:<6} |")
        print("\nraw figures:")
        for line in self.raw:
            print(f"  {line}")


def bench_redirect(args, nginx, work, report):
    url = mirrorgate_config(f"{work}/redirect.toml", nginx, 100_000, f"{work}/redirect.db",
                            server="workers = 1", backend="none", prefix="/tiny")
    daemon = Daemon(args.mirrorgate, f"{work}/redirect.toml", url, env={"TOKIO_WORKER_THREADS": "1"}, core=0)
    daemon.wait_rounds(1)
    path = "/tiny/54321.html"
    # Alternating runs, compared by their medians: one 10 s run's p99 moves
    # with whatever else this shared machine does during it.
    runs = [(wrk(f"http://127.0.0.1:{nginx.redirect}{path}"), wrk(f"{url}/r/news{path}")) for _ in range(3)]
    nginx_rps, nginx_p99 = (statistics.median(run[0][i] for run in runs) for i in (0, 1))
    mg_rps, mg_p99 = (statistics.median(run[1][i] for run in runs) for i in (0, 1))
    mg_bad = sum(run[1][2] for run in runs)
    target = daemon.next_round()
    round_rps, round_p99, round_bad = wrk(f"{url}/r/news{path}")
    busy = daemon.rounds() < target
    daemon.stop()
    report.ratio("1. redirect req/s vs nginx return 302 (1 core each)", mg_rps / nginx_rps, 1.0, True)
    report.figure("1. redirect p99 vs nginx p99", f"{mg_p99:.2f} ms", f"<= {nginx_p99:.2f} ms", mg_p99 <= nginx_p99)
    report.rows.append(("1. redirect req/s vs nginx, probe round running", f"{round_rps / nginx_rps:.2f}x",
                        "report", ""))
    each = lambda k: ", ".join(f"{run[k][0]:,.0f} req/s p99 {run[k][1]:.2f} ms" for run in runs)
    report.raw += [
        f"nginx return 302 (median of 3): {nginx_rps:,.0f} req/s, p99 {nginx_p99:.2f} ms; runs: {each(0)}",
        f"mirrorgate /r, 100,000 articles (median of 3, alternating with nginx): {mg_rps:,.0f} req/s, "
        f"p99 {mg_p99:.2f} ms, non-3xx {mg_bad}; runs: {each(1)}",
        f"mirrorgate /r during a probe round (round still running at the end: {busy}): "
        f"{round_rps:,.0f} req/s, p99 {round_p99:.2f} ms, non-3xx {round_bad}",
    ]
    bench_redirect_by_country(args, nginx, work, report, path)


def bench_redirect_by_country(args, nginx, work, report, path):
    """The same redirect with a country database loaded, agents configured
    and every request through a trusted proxy naming a reader in China (in
    MaxMind's test database): each one looks its country up and is routed
    by what that country's agents report."""
    geoip = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "geoip",
                         "GeoLite2-Country-Test.mmdb")
    token = f"{work}/agent.token"
    with open(token, "w") as f:
        f.write("bench-agent-token-0123456789\n")
    extra = (f'\n[geoip]\ncountry_db = "{geoip}"\n\n[vantage]\ncycle = "1m"\n\n'
             f'[[vantage.agents]]\nname = "cn-1"\ncountry = "CN"\ntoken_file = "{token}"\n')
    url = mirrorgate_config(f"{work}/redirect-geo.toml", nginx, 100_000, f"{work}/redirect-geo.db",
                            server='workers = 1\ntrusted_proxies = ["127.0.0.1"]', backend="none",
                            prefix="/tiny", extra=extra)
    daemon = Daemon(args.mirrorgate, f"{work}/redirect-geo.toml", url, env={"TOKIO_WORKER_THREADS": "1"}, core=0)
    daemon.wait_rounds(1)
    reader = ("X-Forwarded-For: 111.235.160.7",)
    runs = [(wrk(f"http://127.0.0.1:{nginx.redirect}{path}"), wrk(f"{url}/r/news{path}", headers=reader))
            for _ in range(3)]
    daemon.stop()
    nginx_rps, nginx_p99 = (statistics.median(run[0][i] for run in runs) for i in (0, 1))
    mg_rps, mg_p99 = (statistics.median(run[1][i] for run in runs) for i in (0, 1))
    mg_bad = sum(run[1][2] for run in runs)
    report.ratio("1. redirect req/s vs nginx, GeoIP + agents, reader by country", mg_rps / nginx_rps, 1.0, True)
    report.figure("1. redirect p99 vs nginx p99, GeoIP + agents", f"{mg_p99:.2f} ms", f"<= {nginx_p99:.2f} ms",
                  mg_p99 <= nginx_p99)
    report.raw.append(f"mirrorgate /r with GeoIP and agents, X-Forwarded-For from CN (median of 3, alternating "
                      f"with nginx): {mg_rps:,.0f} req/s, p99 {mg_p99:.2f} ms, non-3xx {mg_bad}; "
                      f"nginx {nginx_rps:,.0f} req/s, p99 {nginx_p99:.2f} ms")


def bench_rounds(args, nginx, work, report):
    n = args.articles
    with open(f"{work}/urls.txt", "w") as f:
        for port in nginx.bases:
            f.writelines(f"http://127.0.0.1:{port}/news/{i}.html\n" for i in range(n))
    lychee = [args.lychee, "--no-progress", "--max-concurrency", "64", "--host-concurrency", "64",
              "--host-request-interval", "0ms", f"{work}/urls.txt"]
    # Cold: `check` is one round from nothing, like lychee's one pass. Three
    # runs of each, alternating, compared by their medians: a single run
    # moves with the rest of this shared machine's load.
    mirrorgate_config(f"{work}/rounds.toml", nginx, n, f"{work}/rounds-check.db", backend="none")
    check = [args.mirrorgate, "check", "--config", f"{work}/rounds.toml"]
    runs = [(timed(lychee), timed(check)) for _ in range(3)]
    lychee_wall, lychee_peak = (statistics.median(run[0][i] for run in runs) for i in (0, 1))
    cold_wall, cold_peak = (statistics.median(run[1][i] for run in runs) for i in (0, 1))
    each = lambda k: ", ".join(f"{run[k][0]:.2f} s" for run in runs)
    codes = lambda k: sorted({run[k][2] for run in runs})
    report.raw.append(f"lychee, {4 * n:,} URLs (median of 3): {lychee_wall:.2f} s, peak RSS {lychee_peak:,.0f} KiB "
                      f"(runs {each(0)}; exit {codes(0)})")
    report.raw.append(f"mirrorgate check (cold round), {4 * n:,} probes (median of 3, alternating with lychee): "
                      f"{cold_wall:.2f} s, peak RSS {cold_peak:,.0f} KiB (runs {each(1)}; exit {codes(1)})")

    # Steady state: the daemon's rounds after the first over unchanged
    # content (rounds 2-5), store on and off. Rounds start every 2 s (a
    # reload would start one at once, but it installs a new catalog, and the
    # first round after it starts cold). Store on and off alternate, three
    # daemons each; first rounds and later rounds are compared by medians.
    firsts, laters = {}, {}
    plan = [("sqlite", "sqlite", True), ("none", "none", True)] * 3 + [("plain", "sqlite", False)]
    for run, (name, backend, validators) in enumerate(plan):
        url = mirrorgate_config(f"{work}/rounds-{run}.toml", nginx, n, f"{work}/rounds-{run}.db",
                                backend=backend, probe={"interval": '"2s"'}, validators=validators)
        daemon = Daemon(args.mirrorgate, f"{work}/rounds-{run}.toml", url)
        durations = daemon.round_durations(5)
        daemon.stop()
        firsts.setdefault(name, []).append(durations[0])
        laters.setdefault(name, []).extend(durations[1:])
        kind = "bases with validators" if validators else "bases without validators"
        report.raw.append(f"mirrorgate daemon, store {backend}, {kind}: rounds 1-5 "
                          + ", ".join(f"{d:.2f}" for d in durations) + " s")
    cold = {name: statistics.median(values) for name, values in firsts.items()}
    steady = {name: statistics.median(values) for name, values in laters.items()}

    report.ratio("2. steady round vs lychee (unchanged content)", steady["sqlite"] / lychee_wall, 0.5, False)
    report.ratio("3. round without validators vs lychee", steady["plain"] / lychee_wall, 1.0, False)
    report.ratio("4. cold round vs lychee", cold_wall / lychee_wall, 2.0, False)
    report.ratio("6. peak RSS of a round vs lychee", cold_peak / lychee_peak, 0.5, False)
    # Store overhead over a cold round and the four steady ones after it:
    # every result of every round is written either way.
    with_store = cold["sqlite"] + 4 * steady["sqlite"]
    without = cold["none"] + 4 * steady["none"]
    overhead = with_store / without - 1
    report.figure("7. rounds 1-5, store on vs no-op writer", f"{overhead:+.1%}", "< +10%", overhead < 0.10)


def bench_memory(args, nginx, work, report):
    """RSS with 1,000,000 articles x 4 bases: as configured (2 s after
    ready, probing held to 1/s per base), and in the steady state, after a
    full round has filled in every observation (small pages, limits off)."""
    configured, probed = {}, {}
    for articles in [1, 1_000_000]:
        url = mirrorgate_config(f"{work}/memory-{articles}.toml", nginx, articles, f"{work}/m.db",
                                probe={"per_host_rate": "1"}, backend="none", prefix="/tiny")
        daemon = Daemon(args.mirrorgate, f"{work}/memory-{articles}.toml", url)
        time.sleep(2)
        configured[articles] = (daemon.rss_kib(), daemon.ready_after)
        daemon.stop()
        url = mirrorgate_config(f"{work}/memory-{articles}.toml", nginx, articles, f"{work}/m.db",
                                backend="none", prefix="/tiny")
        daemon = Daemon(args.mirrorgate, f"{work}/memory-{articles}.toml", url)
        round_s = daemon.wait_rounds(1, 1800)
        time.sleep(2)
        probed[articles] = (daemon.rss_kib(), round_s)
        daemon.stop()
    per = lambda sizes: (sizes[1_000_000][0] - sizes[1][0]) * 1024 / (1_000_000 * 4)
    startup = configured[1_000_000][1]
    report.figure("6. RSS per article x base, configured", f"{per(configured):.0f} B", "<= 300 B",
                  per(configured) <= 300)
    report.figure("6. RSS per article x base, after a full round", f"{per(probed):.0f} B", "<= 300 B",
                  per(probed) <= 300)
    report.figure("6. startup with 1,000,000 articles", f"{startup:.2f} s", "< 3 s", startup < 3)
    report.raw += [
        f"RSS configured (2 s after ready, probing held at 1/s per base): empty daemon {configured[1][0]:,} KiB; "
        f"1,000,000 articles x 4 bases {configured[1_000_000][0]:,} KiB",
        f"RSS after the first full round (4,000,000 probes in {probed[1_000_000][1]:.1f} s): "
        f"empty daemon {probed[1][0]:,} KiB; 1,000,000 articles x 4 bases {probed[1_000_000][0]:,} KiB",
    ]


def bench_fingerprint(args, report):
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "fingerprint"], capture_output=True, text=True).stdout
    sha = has_sha_extensions()
    # The targets are set for CPUs without SHA extensions; on one
    # with them the same floor is reported (SHA-256 is then cheaper).
    targets = [
        ("normalize_and_hash", 400.0, "5. normalize + hash, mirror page, selector, one core"),
        ("normalize_and_hash_no_selector", 200.0, "5. normalize + hash, mirror page, no selector"),
        ("normalize_and_hash_first_corpus_page", None, None),
        ("raw_sha256", None, None),
        ("raw_blake3", None, None),
    ]
    for name, target, label in targets:
        found = re.search(rf"fingerprint/{name}\s.*?thrpt:\s+\[[\d.]+ \w+/s ([\d.]+) (\w+)/s", out, re.S)
        if not found:
            report.raw.append(f"criterion {name}: not found in output")
            continue
        value, unit = float(found.group(1)), found.group(2)
        mb = value * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}.get(unit, 1.0)
        report.raw.append(f"criterion {name}: {mb:,.0f} MiB/s (SHA extensions: {'yes' if sha else 'no'})")
        if target:
            report.figure(label, f"{mb:,.0f} MiB/s", f">= {target:.0f} MiB/s", mb >= target)
    # Discovery: one full sitemap (50,000 URLs) parsed on one core.
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "sitemap"], capture_output=True, text=True).stdout
    found = re.search(r"sitemap/parse_50000_urls\s.*?time:\s+\[[\d.]+ \w+ ([\d.]+) (\w+)", out, re.S)
    if found:
        value, unit = float(found.group(1)), found.group(2)
        ms = value * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}.get(unit, 1.0)
        report.figure("discovery: parse a 50,000-URL sitemap, one core", f"{ms:.1f} ms", "< 200 ms", ms < 200)
    else:
        report.raw.append("criterion sitemap/parse_50000_urls: not found in output")

POSTGRES = os.environ.get("MIRRORGATE_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")


def psql(sql, url=POSTGRES):
    return subprocess.run(["psql", url, "-Atqc", sql], capture_output=True, text=True, check=True).stdout.strip()


def pg_schema(name):
    """A fresh schema of the bench database; its URL."""
    psql(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")
    separator = "&" if "?" in POSTGRES else "?"
    return f"{POSTGRES}{separator}options=-csearch_path%3D{name}"


def cold_span(read, pairs, seconds=900):
    """Waits until the store holds a result for every pair; then the
    seconds from the first probe to the last, from the store's rows."""
    wait_for(f"{pairs} pairs stored", lambda: int(read("SELECT count(*) FROM latest")) >= pairs, seconds)
    first, last = read("SELECT min(at) || ' ' || max(at) FROM probes").split()
    return (int(last) - int(first)) / 1000


def sqlite_reader(path):
    import sqlite3

    def read(sql):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return str(db.execute(sql).fetchone()[0] or 0)
        except sqlite3.Error:
            return "0"
    return read


SETTLE_AFTER_ROUND = 6


def bench_cluster(args, nginx, work, report):
    """PostgreSQL beside SQLite, and three instances beside one, on the
    realistic cold-round corpus; redirects of an instance in a cluster; the
    store's size; a new instance joining a 1,000,000-article store."""
    n, pairs = args.articles, 4 * args.articles
    path = "/news/4321.html"
    spans = {"sqlite": [], "pg1": [], "pg3": []}
    for run in range(3):
        db = f"{work}/cluster-{run}.db"
        url = mirrorgate_config(f"{work}/c-sqlite-{run}.toml", nginx, n, db)
        daemon = Daemon(args.mirrorgate, f"{work}/c-sqlite-{run}.toml", url)
        spans["sqlite"].append(cold_span(sqlite_reader(db), pairs))
        daemon.stop()
        for count in (1, 3):
            schema = f"bench_cluster_{count}_{run}"
            store_url = pg_schema(schema)
            read = lambda sql, u=store_url: psql(sql, u) or "0"
            daemons = []
            for i in range(count):
                config = f"{work}/c-pg{count}-{run}-{i}.toml"
                url = mirrorgate_config(config, nginx, n, None, store_url=store_url, instance=f"bench-{i}")
                daemons.append(Daemon(args.mirrorgate, config, url))
            spans[f"pg{count}"].append(cold_span(read, pairs))
            if count == 3 and run == 0:
                bytes_total = int(psql(f"SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                                       f"JOIN pg_namespace s ON s.oid = c.relnamespace "
                                       f"WHERE s.nspname = '{schema}' AND c.relkind = 'r'"))
                probes_rows = int(read("SELECT count(*) FROM probes"))
                # Each instance takes in the others' results within its
                # refresh period (5 s) after the round; redirects are
                # measured after that, on both sides alike.
                time.sleep(SETTLE_AFTER_ROUND)
                cluster_rps, cluster_p99, cluster_bad = wrk(f"{daemons[1].url}/r/news{path}")
            for daemon in daemons:
                daemon.stop()
    median = {name: statistics.median(values) for name, values in spans.items()}
    # The lone SQLite instance's redirects, same article count and machine.
    url = mirrorgate_config(f"{work}/c-lone.toml", nginx, n, f"{work}/cluster-lone.db")
    lone = Daemon(args.mirrorgate, f"{work}/c-lone.toml", url)
    cold_span(sqlite_reader(f"{work}/cluster-lone.db"), pairs)
    time.sleep(SETTLE_AFTER_ROUND)
    lone_rps, lone_p99, lone_bad = wrk(f"{url}/r/news{path}")
    lone.stop()

    report.ratio("8. cold round, one PostgreSQL vs one SQLite instance", median["pg1"] / median["sqlite"], 1.1, False)
    report.ratio("8. cold round, three instances vs one (PostgreSQL)", median["pg3"] / median["pg1"], 1.0, False)
    report.ratio("8. redirect req/s, instance of three vs lone SQLite", cluster_rps / lone_rps, 0.95, True)
    report.figure("8. PostgreSQL bytes per article x base (one round)", f"{bytes_total / pairs:,.0f} B", "report", True)
    each = lambda name: ", ".join(f"{v:.2f} s" for v in spans[name])
    for line in [
        f"cold round, {pairs:,} probes, first to last probe as stored: one SQLite instance {median['sqlite']:.2f} s "
        f"({each('sqlite')}); one PostgreSQL instance {median['pg1']:.2f} s ({each('pg1')}); "
        f"three PostgreSQL instances {median['pg3']:.2f} s ({each('pg3')})",
        f"redirect /r: instance of three {cluster_rps:,.0f} req/s p99 {cluster_p99:.2f} ms non-3xx {cluster_bad}; "
        f"lone SQLite instance {lone_rps:,.0f} req/s p99 {lone_p99:.2f} ms non-3xx {lone_bad}",
        f"PostgreSQL store after one cold round of three instances: {bytes_total:,} bytes, {probes_rows:,} probe rows",
    ]:
        report.add_raw(line)
    bench_cluster_join(args, nginx, work, report)


def bench_cluster_join(args, nginx, work, report):
    """A store holding a result for each of 1,000,000 articles x 4 bases
    (written by SQL, not probed: a round that size is another target); a new
    instance's time from start to its first redirect to a mirror."""
    n = 1_000_000
    store_url = pg_schema("bench_cluster_join")
    config = f"{work}/c-join-0.toml"
    # The first instance creates the schema and the queue, then stops.
    url = mirrorgate_config(config, nginx, n, None, store_url=store_url, instance="seed",
                            probe={"per_host_rate": "1"}, prefix="/tiny")
    Daemon(args.mirrorgate, config, url).stop()
    bases = [f"http://127.0.0.1:{p}" for p in nginx.bases]
    values = ", ".join(f"('{b}', {i == 0})" for i, b in enumerate(bases))
    now_ms = int(time.time() * 1000)
    started = time.time()
    psql(f"""SET search_path = bench_cluster_join;
        INSERT INTO latest (site, base, article, is_primary, at, outcome, http_status, latency_ms, raw_hash, hash,
                            last_ok_at, text_len, title_words, page_flags, page_class, rules)
        SELECT 'news', b.base, '/tiny/' || g || '.html', b.is_primary, {now_ms}, 'ok', 200, 5,
               decode(repeat('ab', 32), 'hex'), decode(repeat('cd', 32), 'hex'), {now_ms}, 4000, 8, 0, NULL, 0
        FROM generate_series(0, {n - 1}) g, (VALUES {values}) AS b(base, is_primary)""")
    # What autovacuum does to a table after that many inserts (PostgreSQL
    # 13 and later): an established store has it done, a table read right
    # after its fill would spend the first read setting hint bits.
    psql("VACUUM (ANALYZE) bench_cluster_join.latest")
    filled = time.time() - started
    config = f"{work}/c-join-1.toml"
    url = mirrorgate_config(config, nginx, n, None, store_url=store_url, instance="joiner",
                            probe={"per_host_rate": "1"}, prefix="/tiny")
    command = [args.mirrorgate, "run", "--config", config]
    log = open(f"{config}.log", "w")
    began = time.time()
    process = subprocess.Popen(command, env={**os.environ, "RUST_LOG": "info"}, stderr=log)
    # Ready: it has restored every stored result and answers on its port
    # (the restore comes before the listener).
    wait_for("the joining instance", lambda: get(f"{url}/healthz"), 600)
    ready = time.time() - began
    with open(f"{config}.log") as f:
        restored = re.search(r'"results":(\d+)|results=(\d+)', f.read())
    restored = next(g for g in restored.groups() if g) if restored else "?"
    process.terminate()
    process.wait()
    report.figure("8. new instance, 1,000,000-article store, ready", f"{ready:.2f} s", "< 10 s", ready < 10)
    report.add_raw(f"joining a store of {4 * n:,} results (filled by SQL in {filled:.1f} s): restored {restored} "
                   f"and serving after {ready:.2f} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirrorgate", required=True)
    parser.add_argument("--lychee", required=True)
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("targets", nargs="*", default=["redirect", "rounds", "memory", "fingerprint"])
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mirrorgate-bench-")
    report = Report()
    print(f"corpus: {args.articles} pages in {work}", file=sys.stderr)
    nginx = Nginx(work, f"{work}/www", args.articles)
    try:
        if "redirect" in args.targets:
            bench_redirect(args, nginx, work, report)
        if "rounds" in args.targets:
            bench_rounds(args, nginx, work, report)
        if "memory" in args.targets:
            bench_memory(args, nginx, work, report)
        if "fingerprint" in args.targets:
            bench_fingerprint(args, report)
        if "cluster" in args.targets:
            bench_cluster(args, nginx, work, report)
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)
    report.print()


if __name__ == "__main__":
    main()
