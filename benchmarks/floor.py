"""The floor: a bare aiohttp + selectolax + asyncio.Queue crawler, no framework.

Fetch, parse title and h1, follow same-host links (a set for dedup), one JSON line per page.
    python -m benchmarks.floor OUT.jsonl URL [URL...] [--workers 64] [--max-pages N]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import orjson
from selectolax.lexbor import LexborHTMLParser
from yarl import URL


async def crawl(starts: list[str], out_path: str, workers: int,
                max_pages: int | None = None) -> int:
    queue: asyncio.Queue[str] = asyncio.Queue()
    enough = asyncio.Event()
    seen = set(starts)
    for url in starts:
        queue.put_nowait(url)
    pages = 0
    with open(out_path, "wb") as out:  # noqa: ASYNC230 - the floor may block; that is the point
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=workers)) as session:

            async def worker() -> None:
                nonlocal pages
                while True:
                    url = await queue.get()
                    try:
                        async with session.get(url) as resp:
                            body = await resp.read()
                        if enough.is_set():
                            continue
                        tree = LexborHTMLParser(body.decode("utf-8", "replace"))
                        title, h1 = tree.css_first("title"), tree.css_first("h1")
                        out.write(orjson.dumps({
                            "url": url, "title": title.text() if title else None,
                            "h1": h1.text() if h1 else None}) + b"\n")
                        pages += 1
                        if pages == max_pages:
                            enough.set()
                        base = URL(url)
                        for a in tree.css("a[href]"):
                            try:
                                link = base.join(URL(a.attributes["href"] or ""))
                            except ValueError:
                                continue
                            if link.host == base.host and link.port == base.port:
                                s = str(link.with_fragment(None))
                                if s not in seen:
                                    seen.add(s)
                                    queue.put_nowait(s)
                    except Exception as exc:
                        print("error", url, exc)
                    finally:
                        queue.task_done()

            tasks = [asyncio.create_task(worker()) for _ in range(workers)]
            joined = asyncio.create_task(queue.join())
            stopped = asyncio.create_task(enough.wait())
            await asyncio.wait((joined, stopped), return_when=asyncio.FIRST_COMPLETED)
            for t in (*tasks, joined, stopped):
                t.cancel()
    return pages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--max-pages", type=int, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    pages = asyncio.run(crawl(args.urls, args.out, args.workers, args.max_pages))
    elapsed = time.perf_counter() - started
    print(orjson.dumps({"pages": pages, "elapsed_seconds": elapsed}).decode())


if __name__ == "__main__":
    main()
