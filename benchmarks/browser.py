"""Pages that need a browser: ours with `render = browser` on a JavaScript-rendered site.

    python -m benchmarks.browser [--pages 2000] [--pages-open 4] [--runs 1]

The site (generated, served by nginx) has `--pages` pages whose content and links exist
only once their script ran: page i shows "content i" and links to pages 3i+1..3i+3. One
page in ten (`/l/`, i % 10 == 5) loads lazily: its content and links arrive only after the
page is scrolled to the bottom, so each crawler's spider scrolls those (and waits for the
content) the way its users would. The
crawl runs as `python -m crawler run` in a subprocess; the whole process tree (the crawler,
Playwright's driver, Chromium and its renderers) is sampled every 0.25 s for its memory
(PSS, shared pages counted once), and the memory when 500 and when 95% of the pages were
written says whether it grows (a leak). Every item is checked against the text the generator put
in its page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.servers import serve, spider_project
from crawler.handlers.proctree import tree_memory

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_PAGE = """<!doctype html><html><head><title>page {i}</title></head><body>
<div id="app">loading</div>{spacer}<script>
const i = {i}, n = {n};
function render() {{
  let html = "<h1>page " + i + "</h1><p class='content'>content " + i + "</p><ul>";
  for (let c = 3 * i + 1; c <= 3 * i + 3 && c < n; c++) {{
    const dir = c % 10 == 5 ? "l" : "p";
    html += "<li><a href='/" + dir + "/" + c + ".html'>page " + c + "</a></li>";
  }}
  document.getElementById("app").innerHTML = html + "</ul>";
}}
{start}
</script></body></html>
"""
# a lazy page: a screenful of nothing, its content fetched (50 ms) once scrolled to the end
_LAZY = """window.addEventListener("scroll", function once() {
  if (window.scrollY + window.innerHeight >= document.body.scrollHeight - 20) {
    window.removeEventListener("scroll", once); setTimeout(render, 50);
  }
});"""
_SPACER = '<div style="height: 3000px"></div>'
SCROLL = "window.scrollTo(0, document.body.scrollHeight)"  # what each spider evaluates

_SPIDER = '''
from crawler import Spider

class JsBench(Spider):
    name = "jsbench"

    def __init__(self, base="", **kw):
        super().__init__(**kw)
        self.start_urls = [base + "p/0.html"]

    async def parse(self, response):
        content = response.css_first("p.content")
        yield {"url": response.url, "content": content.text() if content else None}
        for a in response.css("li a"):
            lazy = "/l/" in a.attributes["href"]  # scrolled, and its content waited for
            yield response.follow(a, meta={"browser_actions": [
                {"evaluate": SCROLL}, {"wait_for": "p.content"}]} if lazy else None)
'''.replace("SCROLL", repr(SCROLL))


def generate(root: Path, n: int) -> Path:
    for folder in ("p", "l"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        lazy = i % 10 == 5
        (root / ("l" if lazy else "p") / f"{i}.html").write_text(_PAGE.format(
            i=i, n=n, spacer=_SPACER if lazy else "", start=_LAZY if lazy else "render();"))
    return root


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def run_ours(base: str, pages: int, pages_open: int, tmp: Path) -> dict[str, float]:
    project = spider_project(tmp / "project", "jsbench", _SPIDER)
    out = project / "out.jsonl"
    cmd = [sys.executable, "-m", "crawler", "run", "jsbench", "-a", f"base={base}",
           "-O", str(out), "--no-progress", "-L", "WARNING",
           "-s", "render=browser", "-s", "obey_robots=false",
           "-s", f"browser_max_pages={pages_open}", "-s", f"concurrency={pages_open}",
           "-s", f"per_host_concurrency={pages_open}"]
    return _run(cmd, project, out, pages, {"PYTHONPATH": str(ROOT)})


def run_peer(python: str, script: str, base: str, pages: int, pages_open: int,
             tmp: Path) -> dict[str, float]:
    """A peer (scrapy-playwright, Crawlee) from its own venv's `python`."""
    work = tmp / Path(script).stem
    work.mkdir(exist_ok=True)
    out = work / "out.jsonl"
    cmd = [python, str(HERE / "peers" / script), base, str(out), str(pages_open)]
    return _run(cmd, work, out, pages, {"CRAWLEE_STORAGE_DIR": str(work / "storage")})


def _run(cmd: list[str], cwd: Path, out: Path, pages: int,
         env: dict[str, str]) -> dict[str, float]:
    """Run `cmd`, sampling its process tree's memory; its figures, its items checked."""
    import orjson

    out.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = at_500 = at_end = 0.0
    while proc.poll() is None:
        memory = tree_memory(proc.pid) / (1 << 20)
        peak = max(peak, memory)
        written = _lines(out)
        if not at_500 and written >= 500:
            at_500 = memory
        if not at_end and written >= 0.95 * pages:
            at_end = memory  # near the end, before the crawl closes its browser
        time.sleep(0.25)
    wall = time.perf_counter() - started
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    urls = {i["url"] for i in items}
    wrong = [i for i in items
             if (i["content"] or "").strip() !=
             f"content {i['url'].rsplit('/', 1)[1].split('.')[0]}"]
    return {"pages": len(urls), "wall": wall, "rate": len(urls) / wall, "peak_mb": peak,
            "at_500_mb": at_500, "at_end_mb": at_end, "wrong": len(wrong), "expected": pages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--pages-open", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--peers", metavar="PYTHON",
                        help="also scrapy-playwright and Crawlee, from the venv of this "
                        "python (pip install scrapy-playwright 'crawlee[playwright]'), "
                        "alternating with ours")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crawler-jsbench-") as tmp_name:
        tmp = Path(tmp_name)
        site = generate(tmp / "site", args.pages)
        with serve(site) as (server, bases):
            print(f"server: {server}; {args.pages} pages rendered by script, "
                  f"{args.pages_open} pages open")
            for _ in range(args.runs):
                runs = [("ours", lambda: run_ours(bases[0], args.pages, args.pages_open, tmp))]
                if args.peers:
                    runs += [(name, lambda script=script: run_peer(
                        args.peers, script, bases[0], args.pages, args.pages_open, tmp))
                        for name, script in (("scrapy-playwright", "scrapy_playwright_js.py"),
                                             ("crawlee", "crawlee_js.py"))]
                for name, run in runs:
                    _report(name, run(), args.pages)


def _report(name: str, r: dict[str, float], pages: int) -> None:
    growth = (r["at_end_mb"] / r["at_500_mb"] - 1) * 100 if r["at_500_mb"] else 0
    print(f"  {name:17} {r['pages']:.0f}/{r['expected']:.0f} pages  {r['wall']:.1f}s  "
          f"{r['rate']:.1f} pages/s  tree memory (PSS): peak {r['peak_mb']:.0f} MB, at page "
          f"500 {r['at_500_mb']:.0f} MB, at page {int(0.95 * pages)} {r['at_end_mb']:.0f} MB "
          f"({growth:+.0f}%)  wrong content: {r['wrong']:.0f}", flush=True)


if __name__ == "__main__":
    main()
