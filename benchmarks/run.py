"""The benchmark suite: floor vs this framework vs Scrapy on local nginx sites.

    python -m benchmarks.run                 # full suite (~15 min): results in benchmarks/results/
    python -m benchmarks.run --smoke         # tiny sites, one round, completeness only

Contenders run alternately (A B C A B C) to cancel drift. Per contender: pages/s (median of
rounds, pages written / process wall time), peak RSS (VmHWM, sampled every 0.1 s), CPU
seconds per 1,000 pages from wait4(), completeness (every page exactly once in its output)
and, for ours, the longest event-loop stall its stats report. Sites of each link shape
(benchmarks/shapes.py): duplicate-heavy, all-new (an endless tree) and two real manuals.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.servers import local_ca, serve
from benchmarks.shapes import Shape, shape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


@dataclass
class Run:
    contender: str
    pages: int
    unique: int
    wall: float
    rss_mb: float
    cpu: float
    series: list[tuple[float, int]] = field(default_factory=list)
    loop_stall: float | None = None  # ours: max_loop_stall_seconds from its stats

    @property
    def rate(self) -> float:
        return self.pages / self.wall


def command(name: str, starts: list[str], out: Path, concurrency: int,
            per_host: int | None = None, max_pages: int | None = None,
            ca: Path | None = None) -> list[str]:
    """`ca`: the test CA's certificate, which ours trusts by tls_ca_bundle (the floor by
    SSL_CERT_FILE, measure()'s; Scrapy does not verify certificates)."""
    if name == "floor":
        cmd = [sys.executable, "-m", "benchmarks.floor", str(out), *starts,
               "--workers", str(concurrency)]
        return cmd + (["--max-pages", str(max_pages)] if max_pages else [])
    if name in ("ours", "jobdir", "ours_curl"):  # jobdir: with a (fresh) job directory;
        # ours_curl: through the second HTTP stack (libcurl, HTTP/2 over TLS)
        cmd = [sys.executable, "-m", "crawler", "run", "bench", "-a", f"start={','.join(starts)}",
               "-s", f"concurrency={concurrency}", "-s", "log_interval=0", "-O", str(out),
               "--stats", str(out.with_suffix(".stats.json"))]
        if name == "ours_curl":
            cmd += ["-s", "http_stack=curl"]
        if ca is not None:
            cmd += ["-s", f"tls_ca_bundle={ca}"]
        if name == "jobdir":
            cmd += ["--job-dir", str(out.with_suffix(".job")), "--restart"]
        if per_host is not None:
            cmd += ["-s", f"per_host_concurrency={per_host}"]
        return cmd + (["-s", f"max_pages={max_pages}"] if max_pages else [])
    if name == "scrapy":
        cmd = [sys.executable, "-m", "scrapy", "runspider", str(HERE / "scrapy_spider.py"),
               "-a", f"start={','.join(starts)}", "-s", f"CONCURRENT_REQUESTS={concurrency}",
               "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={per_host or concurrency}", "-O", str(out)]
        return cmd + (["-s", f"CLOSESPIDER_PAGECOUNT={max_pages}"] if max_pages else [])
    raise ValueError(name)


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def measure(name: str, cmd: list[str], out: Path, sample: bool = False,
            ca: Path | None = None) -> Run:
    """Run one contender to the end; count its output; optionally sample progress. `ca`:
    a CA certificate every contender's OpenSSL trusts (SSL_CERT_FILE)."""
    out.unlink(missing_ok=True)
    series: list[tuple[float, int]] = []
    started = time.perf_counter()
    # stderr to a file: a pipe nobody reads fills at 64 KiB and blocks a chatty contender
    errors = tempfile.TemporaryFile()
    env = {**os.environ, "SSL_CERT_FILE": str(ca)} if ca is not None else None
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors, env=env)
    stop = threading.Event()

    peak_kb = [0]

    def sampler() -> None:
        # VmHWM of the child's own address space: wait4's ru_maxrss would also count the
        # runner's memory the child held between fork and exec
        status_file = Path(f"/proc/{proc.pid}/status")
        while not stop.wait(0.1):
            try:
                for line in status_file.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb[0] = max(peak_kb[0], int(line.split()[1]))
            except (OSError, ValueError):
                pass
            if sample:
                series.append((time.perf_counter() - started, _count_lines(out)))

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stop.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    errors.seek(0)
    err = errors.read().decode(errors="replace")
    errors.close()
    if proc.returncode:
        raise RuntimeError(f"{name} exited {proc.returncode}: {err[-2000:]}")
    urls = [json.loads(line)["url"] for line in out.read_bytes().splitlines() if line.strip()]
    series.append((wall, len(urls)))
    stats_path = out.with_suffix(".stats.json")
    stall = json.loads(stats_path.read_text())["max_loop_stall_seconds"] \
        if stats_path.exists() else None
    return Run(name, len(urls), len(set(urls)), wall, peak_kb[0] / 1024,
               usage.ru_utime + usage.ru_stime, series, stall)


def compare(contenders: list[str], site: Shape, hosts: int, rounds: int, concurrency: int,
            per_host: int | None, sample: bool, tls: bool = False) -> dict[str, list[Run]]:
    """`tls`: served over HTTPS (and HTTP/2 by ALPN) with a throwaway CA's certificate."""
    runs: dict[str, list[Run]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp, serve(
            site.root, hosts, tls=local_ca(Path(tmp))[1:] if tls else None) as (server, bases):
        ca = Path(tmp) / "ca.pem" if tls else None
        starts = [b + site.start for b in bases]
        print(f"-- {site.title}, {hosts} host(s), concurrency {concurrency}, "
              f"per-host {per_host or 'unlimited'}; server: {server}"
              f"{' over TLS' if tls else ''}", flush=True)
        for r in range(rounds):
            for name in contenders:
                out = Path(tmp) / f"{name}.jsonl"
                cmd = command(name, starts, out, concurrency, per_host, site.max_pages, ca)
                run = measure(name, cmd, out, sample=sample and r == 0, ca=ca)
                runs[name].append(run)
                stall = f"  loop stall {run.loop_stall:.3f}s" if run.loop_stall is not None else ""
                print(f"   {name:7} {run.pages:7} pages ({run.unique} unique) {run.wall:7.2f}s "
                      f"{run.rate:7.0f} pages/s  rss {run.rss_mb:5.0f} MB  cpu {run.cpu:6.1f}s"
                      f"{stall}", flush=True)
    return runs


def summarise(runs: dict[str, list[Run]], expected: int | None) -> dict[str, Any]:
    """Medians per contender. With no expected count (a real site), every contender must
    find the floor's pages."""
    if expected is None and "floor" in runs:
        expected = runs["floor"][0].unique
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        out[name] = {
            "pages_per_second": round(statistics.median(r.rate for r in rs), 1),
            "peak_rss_mb": round(statistics.median(r.rss_mb for r in rs), 1),
            "cpu_seconds_per_1000_pages": round(
                statistics.median(r.cpu / r.pages * 1000 for r in rs), 3),
            # CPU seconds per wall second: above 1, work ran off the interpreter's thread
            "cores_busy": round(statistics.median(r.cpu / r.wall for r in rs), 2),
            "pages": rs[0].unique,
            "complete": all(r.unique == expected for r in rs),
            "exactly_once": all(r.pages == r.unique == expected for r in rs),
            "max_loop_stall_seconds": max((r.loop_stall for r in rs if r.loop_stall is not None),
                                          default=None),
            "runs": [{k: v for k, v in asdict(r).items() if k != "series"} for r in rs],
        }
    return out


def ratios(summary: dict[str, Any]) -> dict[str, float]:
    ours = summary["ours"]["pages_per_second"]
    result = {}
    if "jobdir" in summary:
        result["jobdir/ours"] = round(summary["jobdir"]["pages_per_second"] / ours, 2)
    if "ours_curl" in summary:
        result["ours_curl/ours"] = round(summary["ours_curl"]["pages_per_second"] / ours, 2)
    for other in ("floor", "scrapy"):
        if other in summary:
            result[f"ours/{other}"] = round(ours / summary[other]["pages_per_second"], 2)
    if "floor" in summary:
        result["rss ours/floor"] = round(
            summary["ours"]["peak_rss_mb"] / summary["floor"]["peak_rss_mb"], 2)
    return result


def profile_ours(site: Shape) -> list[tuple[str, float]]:
    """Top 5 self-time frames of one crawl under py-spy, as % of samples."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return []
    with serve(site.root, 1) as (_, bases), tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        cmd = command("ours", [bases[0] + site.start], Path(tmp) / "o.jsonl", 64,
                      max_pages=site.max_pages)
        subprocess.run([spy, "record", "-r", "250", "-f", "raw", "-o", str(raw), "--", *cmd],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        counts: collections.Counter[str] = collections.Counter()
        total = 0
        for line in raw.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            total += int(n)
            frame = stack.split(";")[-1]
            counts[frame.split(" (")[0] + " (" + frame.rsplit("/", 1)[-1]] += int(n)
    return [(frame, round(100 * n / total, 1)) for frame, n in counts.most_common(5)]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in ("aiohttp", "selectolax", "yarl", "scrapy"):
        try:
            from importlib.metadata import version
            versions[pkg] = version(pkg)
        except Exception:
            pass
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip() \
        if shutil.which("nginx") or Path("/usr/sbin/nginx").exists() else "absent"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "nginx": nginx, "packages": versions,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _smoothed(series: list[tuple[float, int]], window: float = 1.0) -> tuple[list[float],
                                                                          list[float]]:
    """Pages/s over a sliding window: output files are written in batches, so raw deltas
    between samples jump between 0 and several times the true rate."""
    xs, ys = [], []
    for t, n in series:
        earlier = [(t0, n0) for t0, n0 in series if t - window <= t0 < t]
        if earlier and t > earlier[0][0]:
            t0, n0 = earlier[0]
            xs.append(t)
            ys.append((n - n0) / (t - t0))
    return xs, ys


def plot(series: dict[str, list[tuple[float, int]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fast = [n for n in series if n != "scrapy"]
    fig, axes = plt.subplots(1, 2 if "scrapy" in series else 1, figsize=(10, 4.2),
                             squeeze=False)
    for ax, names in zip(axes[0], (fast, ["scrapy"]), strict=False):
        for name in names:
            ax.plot(*_smoothed(series[name]), label=name)
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("pages/s (1 s window)")
        ax.set_ylim(bottom=0)
        ax.legend()
    fig.suptitle("Pages per second over one 20,000-page crawl, one host")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"# Benchmark results ({m['date']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['nginx']}; "
             f"{', '.join(f'{k} {v}' for k, v in m['packages'].items())}.", "",
             f"Command: `{results['command']}`", ""]
    for shape_name, again in results.get("commands", {}).items():
        lines += [f"The {shape_name} shape run again since: `{again}`.", ""]
    for section in results["comparisons"].values():
        lines += [f"## {section['title']}", "",
                  "| contender | pages/s (median) | peak RSS MB | CPU s / 1,000 pages "
                  "| cores busy | pages | every page exactly once | longest loop stall |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, s in section["summary"].items():
            once = "yes" if s["exactly_once"] else (
                "all pages, some twice" if s["complete"] else "no")
            stall = f"{s['max_loop_stall_seconds']:.3f} s" \
                if s.get("max_loop_stall_seconds") is not None else ""
            lines.append(f"| {name} | {s['pages_per_second']:,.0f} | {s['peak_rss_mb']:.0f} | "
                         f"{s['cpu_seconds_per_1000_pages']:.2f} | {s.get('cores_busy', '')} "
                         f"| {s['pages']:,} | {once} | {stall} |")
        lines += ["", "Ratios: " + ", ".join(f"{k} = {v}" for k, v in section["ratios"].items()),
                  ""]
    if results.get("broad"):
        b = results["broad"]
        lines += [f"## Broad crawl: {b['hosts']:,} hosts x {b['pages']} pages, "
                  f"{b['delay']:g} s delay per host, concurrency {b['concurrency']}", "",
                  f"The politeness ceiling is {b['ceiling']:,} pages/s; no host's chain of "
                  f"pages can end before {(b['pages'] - 1) * b['delay']:.0f} s. Gaps are "
                  "between two requests to one host, from nginx's log.", "",
                  "| crawl | pages/s | seconds | hosts with every page | shortest gap "
                  "| gaps under 95 % of the delay |", "|---|---|---|---|---|---|"]
        for r in b["results"]:
            lines.append(f"| {r['name']} | {r['pages_per_second']:,} | {r['seconds']} | "
                         f"{r['hosts_complete']:,} of {r['hosts']:,} | {r['shortest_gap']:.3f} s "
                         f"| {r['gaps_under']} of {r['gaps']:,} |")
        lines.append("")
    if results.get("skipped"):
        lines += ["Skipped: " + "; ".join(results["skipped"]), ""]
    if results.get("scaling"):
        lines += ["## Scaling (ours vs floor, duplicate-heavy site)", "",
                  "| pages | hosts | concurrency | floor pages/s | ours pages/s | ours/floor "
                  "| floor RSS MB | ours RSS MB |", "|---|---|---|---|---|---|---|---|"]
        for row in results["scaling"]:
            lines.append(f"| {row['pages']:,} | {row['hosts']} | {row['concurrency']} | "
                         f"{row['floor']:,.0f} | {row['ours']:,.0f} | {row['ratio']} | "
                         f"{row['floor_rss']:.0f} | {row['ours_rss']:.0f} |")
        lines.append("")
    for key, title in (("profile", "duplicate-heavy site"), ("profile_tree", "endless tree")):
        if results.get(key):
            lines += [f"## Top 5 costs in our crawl, {title} (py-spy self time)", ""]
            lines += [f"{i}. {frame}: {pct}%" for i, (frame, pct) in
                      enumerate(results[key], 1)]
            lines.append("")
    stalls = [s["max_loop_stall_seconds"] for c in results["comparisons"].values()
              for s in c["summary"].values() if s.get("max_loop_stall_seconds") is not None]
    if stalls:
        lines += [f"Longest event-loop stall over all of our crawls: {max(stalls):.3f} s.", ""]
    return "\n".join(lines)


def _section(results: dict[str, Any], key: str, contenders: list[str], site: Shape,
             hosts: int, rounds: int, per_host: int | None = None,
             sample: bool = False, tls: bool = False) -> dict[str, list[Run]]:
    runs = compare(contenders, site, hosts, rounds, 64, per_host, sample=sample, tls=tls)
    limit = f", ours limited to {per_host} per host" if per_host else ""
    over = " over HTTPS (HTTP/2 offered by ALPN)" if tls else ""
    results["comparisons"][key] = {
        "title": f"{site.title}{over}, {hosts} host(s), concurrency 64{limit}",
        "summary": (s := summarise(runs, site.expected_for(hosts))), "ratios": ratios(s)}
    return runs


def shapes(results: dict[str, Any], args: argparse.Namespace, contenders: list[str],
           only: str | None = None) -> None:
    """The HTTPS shape (the 20k site over TLS: ours on both HTTP stacks, the floor,
    Scrapy) and the broad shape (benchmarks/broad.py), into `results`."""
    if only in (None, "https") and not args.no_https:
        https = [c for c in contenders if c != "jobdir"]
        https.insert(2, "ours_curl")
        _section(results, "https", https, shape("dup", args.pages), 1, args.rounds, tls=True)
        results["skipped"].append(
            "spider-rs (HTTPS shape): spider_rs has no wheel for this platform and building "
            "it needs crates.io, which this machine cannot reach")
    if only in (None, "broad") and not args.no_broad:
        from benchmarks import broad

        kept = [r for r in results.get("broad", {}).get("results", [])
                if r["name"].startswith("Scrapy")] if args.keep_peers else []
        results["broad"] = broad.run(
            variants=True, scrapy=not kept and importlib.util.find_spec("scrapy") is not None)
        results["broad"]["results"] += kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sites, 1 round, no Scrapy")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--tree-pages", type=int, default=30_000)
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-https", action="store_true", help="skip the HTTPS shape")
    parser.add_argument("--no-broad", action="store_true", help="skip the broad shape")
    parser.add_argument("--only", choices=("https", "broad"),
                        help="run that shape alone (its results merged into latest.json)")
    parser.add_argument("--keep-peers", action="store_true",
                        help="with --only broad: run ours again, keep the saved Scrapy runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the plot from the saved latest.json")
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads((args.out / "latest.json").read_text())
        plot(saved["series"], args.out / "pages_per_second.png")
        return

    if args.smoke:
        ok = True
        for site, hosts in ((shape("dup", 150), 2), (shape("tree", 300), 1)):
            summary = summarise(compare(["floor", "ours", "jobdir"], site, hosts, 1, 16, 4,
                                        False),
                                site.expected_for(hosts))
            print(json.dumps({n: {"complete": s["complete"], "exactly_once": s["exactly_once"]}
                              for n, s in summary.items()}))
            ok = ok and all(s["exactly_once"] for s in summary.values())
        sys.exit(0 if ok else 1)

    contenders = ["floor", "ours", "jobdir"]
    if importlib.util.find_spec("scrapy"):
        contenders.append("scrapy")
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(
        ["python -m benchmarks.run", *sys.argv[1:]]), "comparisons": {}, "scaling": [],
        "skipped": []}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only:  # one shape again: the other sections stay as they were
        saved = json.loads((args.out / "latest.json").read_text())
        saved["skipped"] = [s for s in saved.get("skipped", []) if "spider-rs" not in s]
        shapes(saved, args, contenders, only=args.only)
        saved["commands"] = {**saved.get("commands", {}), args.only: results["command"]}
        (args.out / "latest.json").write_text(json.dumps(saved, indent=2) + "\n")
        (args.out / "latest.md").write_text(markdown(saved))
        print(markdown(saved))
        return

    dup = shape("dup", args.pages)
    single = _section(results, "single", contenders, dup, 1, args.rounds, sample=True)
    results["series"] = {name: rs[0].series for name, rs in single.items()}
    _section(results, "four_hosts", ["floor", "ours"], dup, 4, args.rounds, per_host=16)
    tree = shape("tree", args.tree_pages)
    _section(results, "tree", ["floor", "ours", "jobdir"], tree, 1, args.rounds)
    for name in ("pgdocs", "pydocs"):
        try:
            _section(results, name, contenders, shape(name), 1, args.rounds)
        except LookupError as exc:
            results["skipped"].append(str(exc))

    if not args.no_scaling:
        grid = [(20_000, 1, 16), (20_000, 1, 256), (20_000, 2, 64), (2_000, 1, 64),
                (100_000, 1, 64)]
        for pages, hosts, conc in grid:
            per_site = shape("dup", pages // hosts)  # pages in all, over the hosts
            runs = compare(["floor", "ours"], per_site, hosts, 1, conc, None, sample=False)
            f, o = runs["floor"][0], runs["ours"][0]
            results["scaling"].append({
                "pages": pages, "hosts": hosts, "concurrency": conc, "floor": round(f.rate),
                "ours": round(o.rate), "ratio": round(o.rate / f.rate, 2),
                "floor_rss": f.rss_mb, "ours_rss": o.rss_mb})
    shapes(results, args, contenders)
    results["profile"] = profile_ours(dup)
    results["profile_tree"] = profile_ours(tree)

    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results["series"], args.out / "pages_per_second.png")  # last: matplotlib is big
    (args.out / "latest.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
