"""Fallback static server for machines without nginx.

    python -m benchmarks.static ROOT PORT...
    python -m benchmarks.static --tree PORT...    # the endless tree
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web


async def main(root: Path | None, ports: list[int]) -> None:
    from benchmarks.servers import tree_page

    app = web.Application()
    if root is None:
        async def tree(request: web.Request) -> web.Response:
            if request.path == "/robots.txt":
                raise web.HTTPNotFound()
            return web.Response(text=tree_page(request.path), content_type="text/html")

        app.router.add_get("/{tail:.*}", tree)
    else:
        app.router.add_static("/", root)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(None if sys.argv[1] == "--tree" else Path(sys.argv[1]),
                     [int(p) for p in sys.argv[2:]]))
