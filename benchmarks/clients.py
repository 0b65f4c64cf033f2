"""The HTTP clients a second stack could be built on, side by side: raw GETs of a static
site's pages over HTTP/1.1 and over TLS (HTTP/1.1 and HTTP/2), 64 at a time, on loopback.

    python -m benchmarks.clients [--pages 5000] [--rounds 3]

Clients: aiohttp (our first stack), curl_cffi (libcurl; the `broad` extra) and rnet (Rust,
`pip install rnet`: measured when installed). nginx serves the generated site
(benchmarks/site.py), over TLS with a throwaway CA's certificate, offering HTTP/2 by ALPN.
Per client: requests/s (median of rounds, each in a fresh process), CPU seconds per 1,000
requests, and the cores busy (CPU seconds per wall second: above 1.0, work ran off the
interpreter's thread). Results: benchmarks/results/clients.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.servers import local_ca, serve
from benchmarks.site import generate

CONCURRENCY = 64
CLIENTS = {"aiohttp": "aiohttp", "curl_cffi": "curl_cffi", "rnet": "rnet"}


async def _aiohttp(urls: list[str], http2: bool) -> int:
    import aiohttp

    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        async def get(url: str) -> int:
            async with session.get(url) as response:
                return len(await response.read())
        return await _drive(urls, get)


async def _curl(urls: list[str], http2: bool) -> int:
    from curl_cffi import CurlHttpVersion
    from curl_cffi.requests import AsyncSession

    version = CurlHttpVersion.V2TLS if http2 else CurlHttpVersion.V1_1
    async with AsyncSession(max_clients=CONCURRENCY, http_version=version) as session:
        async def get(url: str) -> int:
            return len((await session.get(url)).content)
        return await _drive(urls, get)


async def _rnet(urls: list[str], http2: bool) -> int:
    import rnet

    ca = os.environ.get("SSL_CERT_FILE")  # rnet reads no OpenSSL environment (and crashed
    # with SIGSEGV, rnet 2.4, when left to find a CA for the test certificate itself)
    client = rnet.Client(http1_only=not http2, verify=Path(ca) if ca else None)

    async def get(url: str) -> int:
        response = await client.get(url)
        return len(await response.bytes())
    return await _drive(urls, get)


async def _drive(urls: list[str], get: Callable[[str], Awaitable[int]]) -> int:
    queue = list(reversed(urls))
    sizes: list[int] = []

    async def worker() -> None:
        while queue:
            sizes.append(await get(queue.pop()))
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return sum(sizes)


def child(client: str, http2: bool, urls_file: str) -> None:
    """One measured run, in this (fresh) process: prints requests/s, CPU s, wall s, bytes."""
    urls = Path(urls_file).read_text().split()
    run = {"aiohttp": _aiohttp, "curl_cffi": _curl, "rnet": _rnet}[client]
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    size = asyncio.run(run(urls, http2))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(len(urls) / wall, cpu, wall, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "h2", args.child[2])
        return
    clients = [c for c, module in CLIENTS.items() if importlib.util.find_spec(module)]
    print(f"{args.pages} GETs of ~4 KB pages, {CONCURRENCY} at a time, loopback nginx; "
          f"median of {args.rounds} rounds; clients: {', '.join(clients)}")
    with tempfile.TemporaryDirectory(prefix="crawler-clients-") as tmp_name:
        tmp = Path(tmp_name)
        root = generate(tmp / "site", args.pages)
        ca, cert, key = local_ca(tmp)
        for label, tls, versions in (("HTTP/1.1", None, ("h1",)),
                                     ("TLS", (cert, key), ("h1", "h2"))):
            with serve(root, tls=tls) as (_, bases):
                urls = tmp / "urls.txt"
                urls.write_text("\n".join(f"{bases[0]}p/{i}.html" for i in range(args.pages)))
                for version in versions:
                    runs: dict[str, list[list[float]]] = {c: [] for c in clients}
                    for _ in range(args.rounds):
                        for client in clients:  # alternated: this machine drifts
                            out = subprocess.run(
                                [sys.executable, "-m", "benchmarks.clients", "--child", client,
                                 version, str(urls)], capture_output=True, text=True,
                                env={"SSL_CERT_FILE": str(ca), "PATH": "/usr/bin:/bin"},
                                cwd=Path(__file__).resolve().parent.parent, check=False)
                            if out.returncode:
                                print(f"  {label} {version} {client}: exited "
                                      f"{out.returncode}: {out.stderr.strip()[-300:]}")
                                continue
                            runs[client].append([float(x) for x in out.stdout.split()])
                    for client, rs in runs.items():
                        if not rs:
                            continue
                        rate = statistics.median(r[0] for r in rs)
                        cpu = statistics.median(r[1] / args.pages * 1000 for r in rs)
                        cores = statistics.median(r[1] / r[2] for r in rs)
                        name = f"{label}{' ' + version if tls else ''}"
                        print(f"  {name:10} {client:10} {rate:7.0f} requests/s  "
                              f"{cpu:.3f} CPU s / 1,000  {cores:.2f} cores busy", flush=True)


if __name__ == "__main__":
    main()
