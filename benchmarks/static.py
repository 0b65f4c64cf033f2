"""Fallback static server for machines without nginx.

    python -m benchmarks.static ROOT PORT...
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web


async def main(root: Path, ports: list[int]) -> None:
    app = web.Application()
    app.router.add_static("/", root)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), [int(p) for p in sys.argv[2:]]))
