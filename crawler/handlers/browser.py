"""Pages rendered in Chromium through Playwright: a download handler (crawler/handlers/),
for `meta["browser"] = True` or every http(s) page with `render = "browser"`.

`browsers` browsers per crawl (default one), driven by Playwright and launched from the
system's Chromium (`browser_executable`, else `chromium` on PATH: nothing is ever
downloaded). Pages are bounded (`browser_max_pages` open at once, over all browsers); each
request gets a page in its context (`meta["browser_context"]`, default one: a page with
no context of its own goes to the browser with the fewest pages open, a named context
lives in one browser), and a context is replaced after `browser_recycle_pages` pages, so
what pages leak goes with it. A browser whose processes hold more than
`browser_max_memory` is restarted once its open pages are done. Every navigation, wait and
close runs under a watchdog (`browser_timeout`): a page that never loads or loops forever
in JavaScript fails as `browser_timeout` and its slot comes back; dialogs are dismissed,
popups closed and downloads refused. A browser that dies is launched again for the next
page (the page it took with it fails as `browser_crash`, which is retried). Images, media
and fonts are not loaded (`browser_block`). The callback gets a normal Response: the
rendered DOM, and the final URL, status and headers of the main document.

The browser is Playwright's child (its driver's): when the crawl ends, however it ends,
the driver's pipe closes and it takes the browser with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import shutil
import time
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict
from yarl import URL

from crawler.exceptions import DownloadError, Kind, StartupError
from crawler.handlers.actions import call_page_hook, check_actions, run_actions
from crawler.handlers.dns import parse_resolve
from crawler.handlers.netguard import forbidden, literal_address
from crawler.handlers.proctree import roots, tree_memory
from crawler.http import Request, Response
from crawler.settings import Settings
from crawler.stats import Stats

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["BrowserHandler", "find_chromium"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 5.0  # seconds a page, a context or the browser may take to close
_MEMORY_EVERY = 10  # pages rendered between two looks at the browser's memory
# pages a tab renders before it is closed: its renderer's memory grows with each (measured:
# ~35 MB fresh, ~75 MB after 50 pages), while opening a tab costs ~80 ms
_TAB_USES = 8
# the main document's headers that no longer describe the body (the DOM, as UTF-8), and
# its cookies (the context's, after the page ran, are given instead)
_REPLACED = frozenset({"content-type", "content-encoding", "content-length", "set-cookie"})
_INSTALL = "apt-get install chromium (Debian/Ubuntu), or give browser_executable"
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium's network errors, by the kind a plain HTTP fetch would have given
_NET_KINDS = {"ERR_NAME_NOT_RESOLVED": Kind.DNS, "ERR_CONNECTION_REFUSED": Kind.CONNECTION,
              "ERR_CONNECTION_RESET": Kind.CONNECTION, "ERR_CONNECTION_CLOSED": Kind.CONNECTION,
              "ERR_ADDRESS_UNREACHABLE": Kind.CONNECTION, "ERR_EMPTY_RESPONSE": Kind.CONNECTION,
              "ERR_TIMED_OUT": Kind.TIMEOUT, "ERR_CONNECTION_TIMED_OUT": Kind.TIMEOUT,
              "ERR_CERT_": Kind.TLS, "ERR_SSL_": Kind.TLS}


def find_chromium(settings: Settings) -> str:
    """The Chromium executable to drive; StartupError, naming how to install it."""
    if settings.browser_executable is not None:
        found = shutil.which(settings.browser_executable)
        if found is None:
            raise StartupError(f"browser_executable {settings.browser_executable!r} is not an "
                               f"executable: {_INSTALL}")
        return found
    for name in _NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise StartupError(f"rendering pages needs Chromium, and none is on PATH: {_INSTALL}")


def _check_playwright() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        raise StartupError("rendering pages needs Playwright: pip install -e '.[browser]' "
                           "(it drives the system's Chromium; no browser is downloaded)") \
            from None


class _Context:
    """A browser context, how many pages it has rendered, and its idle tabs with the pages
    each has rendered (a tab is navigated again rather than opened anew, opening one costs
    ~80 ms, but only _TAB_USES times: a renderer's heap grows with every page it shows)."""

    __slots__ = ("busy", "context", "idle", "pages", "retired")

    def __init__(self, context: Any) -> None:
        self.context = context
        self.pages = 0  # rendered (or being rendered) in it
        self.busy = 0  # pages being rendered in it now
        self.retired = False  # replaced: closed once its busy pages are done
        self.idle: list[tuple[Any, int]] = []


class _Browser:
    """One launched Chromium: its contexts, the pages open in it, and its memory."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.browser: Any = None
        self.pid: int | None = None  # its main process, for its memory
        self.contexts: dict[str, _Context] = {}
        self.open = 0  # pages being rendered in it
        self.rendered = 0
        self.restart_due = False  # past browser_max_memory: restart once open == 0
        self.drained = asyncio.Event()
        self.memory_mb = 0.0  # at the last look

    def connected(self) -> bool:
        return self.browser is not None and self.browser.is_connected()


class BrowserHandler:
    """Usage: `async with BrowserHandler(settings, stats) as handler: await
    handler.fetch(request)`; built by the crawl's download handlers."""

    def __init__(self, settings: Settings, stats: Stats | None = None, *,
                 spider: Any = None) -> None:
        self._settings = settings
        self._spider = spider  # whose method a request's meta["browser_page"] may name
        self._stats = stats or Stats()
        self._timeout = settings.browser_timeout
        self._block = frozenset(settings.browser_block)
        self._slots = asyncio.Semaphore(settings.browser_max_pages)
        self._playwright: Any = None
        self._executable: str | None = None
        self._browsers = [_Browser(i) for i in range(settings.browsers)]
        self._starting = asyncio.Lock()  # one launch at a time: a new browser's pid is
        self._closed = False             # the Chromium root that was not there before
        self._chores: set[asyncio.Future[None]] = set()
        # allow_private_addresses = false: every request of a page is checked first
        self._guard = not settings.allow_private_addresses
        self._cookies = settings.cookies_enabled  # shared both ways with the HTTP jar
        self._verdicts: dict[str, bool] = {}  # host -> allowed (bounded)
        self._args = ["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
        if settings.resolve:  # the crawl's names (crawler/handlers/dns.py), for Chromium too
            rules = ", ".join(f"MAP {host} {f'[{address}]' if ':' in address else address}"
                              for host, _, address in parse_resolve(settings.resolve))
            self._args.append(f"--host-resolver-rules={rules}")

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> BrowserHandler:
        s = crawler.settings
        if s.render == "browser":  # every page needs it: say so before anything opens
            _check_playwright()
            find_chromium(s)
        return cls(s, crawler.stats, spider=crawler.spider)

    async def __aenter__(self) -> BrowserHandler:
        try:
            _check_playwright()
            self._executable = find_chromium(self._settings)
        except StartupError as exc:
            raise DownloadError(Kind.BROWSER_ERROR, str(exc), None) from None
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._closed = True
        for browser in self._browsers:
            with contextlib.suppress(Exception):
                await self._close_browser(browser)
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._playwright.stop(), _CLOSE_TIMEOUT)
            self._playwright = None

    async def fetch(self, request: Request) -> Response:
        meta = request._meta or {}
        # a cookie session (meta["cookiejar"]) gets its own context unless told otherwise
        named = meta.get("browser_context", meta.get("cookiejar"))
        key = "default" if named is None else str(named)
        async with self._slots:
            browser = self._pick(named is not None and key)
            while browser.restart_due:  # it holds too much memory: drain it, restart it
                if browser.open == 0:
                    await self._restart_for_memory(browser)
                    break
                browser.drained.clear()
                await browser.drained.wait()
            browser.open += 1
            try:
                return await self._render(browser, key, request)
            finally:
                browser.open -= 1
                if not browser.open:
                    browser.drained.set()
                browser.rendered += 1
                if browser.rendered % _MEMORY_EVERY == 0 and browser.pid is not None:
                    self._aside(self._check_memory(browser))

    def _pick(self, key: str | bool) -> _Browser:
        """The browser a named context lives in (the same one every time), else the one with
        the fewest pages open (one not waiting for a restart first)."""
        if key and len(self._browsers) > 1:
            digest = hashlib.blake2b(str(key).encode(), digest_size=4).digest()
            return self._browsers[int.from_bytes(digest, "big") % len(self._browsers)]
        return min(self._browsers, key=lambda b: (b.restart_due, b.open))

    async def _check_memory(self, browser: _Browser) -> None:
        """Read a browser's memory (its processes' PSS); past browser_max_memory, restart
        it once the pages it has open are done."""
        if browser.pid is None:
            return
        # the browser, its renderers, GPU and utility processes (blocking: /proc)
        browser.memory_mb = await asyncio.to_thread(tree_memory, browser.pid) / (1 << 20)
        peak = self._stats.counters["browser/peak_memory_mb"]
        self._stats.counters["browser/peak_memory_mb"] = max(peak, round(browser.memory_mb))
        if browser.memory_mb > self._settings.browser_max_memory and not browser.restart_due:
            logger.warning("browser %d holds %.0f MB (browser_max_memory %d): restarting it "
                           "once its open pages are done", browser.index, browser.memory_mb,
                           self._settings.browser_max_memory)
            browser.restart_due = True

    async def _restart_for_memory(self, browser: _Browser) -> None:
        browser.restart_due = False
        self._stats.counters["browser/memory_restarts"] += 1
        async with self._starting:
            with contextlib.suppress(Exception):
                await self._close_browser(browser)

    def snapshot(self) -> dict[str, Any]:
        """The browsers' part of the crawl's status (summed over them)."""
        b = self._browsers
        return {"browser": {"browsers": len(b), "running": sum(x.browser is not None for x in b),
                            "pages_open": sum(x.open for x in b),
                            "contexts": sum(len(x.contexts) for x in b),
                            "memory_mb": round(sum(x.memory_mb for x in b), 1),
                            "restarts": self._stats.counters["browser/restarts"]
                            + self._stats.counters["browser/memory_restarts"]}}

    async def _render(self, browser: _Browser, key: str, request: Request) -> Response:
        meta = request._meta or {}
        holder = await self._context(browser, key, request)
        holder.pages += 1
        holder.busy += 1
        page = None
        uses = 0
        reusable = False
        try:
            page, uses = holder.idle.pop() if holder.idle else (await self._new_page(holder), 0)
            status, headers = await asyncio.wait_for(self._navigate(page, request),
                                                     self._timeout)
            await self._act(page, request)
            body = (await asyncio.wait_for(page.content(), self._timeout)).encode()
            if self._cookies:  # what the page's scripts set, for the crawl's cookie jar
                for cookie in await asyncio.wait_for(page.context.cookies(page.url),
                                                     self._timeout):
                    headers.add("Set-Cookie", _set_cookie(cookie))
            # a tab a page hook had (it may have changed it) is not used again
            reusable = not meta.get("browser_page")
            return Response(page.url, status, headers, body, request, flags=("browser",))
        except TimeoutError:
            self._stats.counters["browser/timeouts"] += 1
            raise DownloadError(Kind.BROWSER_TIMEOUT, f"the page did not load within "
                                f"{self._timeout:g} s (browser_timeout)", request) from None
        except DownloadError:
            raise
        except Exception as exc:
            raise self._failure(browser, exc, request) from None
        finally:
            holder.busy -= 1
            if holder.pages >= self._settings.browser_recycle_pages:
                self._retire(browser, holder)
            if page is not None:
                if reusable and not holder.retired and uses + 1 < _TAB_USES:
                    holder.idle.append((page, uses + 1))  # the next page navigates it
                else:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(page.close(), _CLOSE_TIMEOUT)
            if holder.retired and not holder.busy:
                await self._close_context(holder)

    async def _new_page(self, holder: _Context) -> Any:
        page = await asyncio.wait_for(holder.context.new_page(), self._timeout)
        page.on("dialog", lambda dialog: self._aside(dialog.dismiss()))
        page.on("popup", lambda popup: self._aside(popup.close()))
        return page

    async def _navigate(self, page: Any, request: Request,
                        ) -> tuple[int, CIMultiDict[str]]:
        """Load the page (with the cookies the crawl's jar gave the request); the main
        document's status and headers."""
        sent = request.headers.get("Cookie") if request.headers else None
        if sent and self._cookies:
            jar = SimpleCookie()
            with contextlib.suppress(CookieError):
                jar.load(sent)
            if jar:
                await page.context.add_cookies([{"name": name, "value": morsel.value,
                                                 "url": request.url}
                                                for name, morsel in jar.items()])
        response = await page.goto(request.url, wait_until="load")
        self._stats.counters["browser/pages"] += 1
        headers: CIMultiDict[str] = CIMultiDict()
        status = 200
        if response is not None:  # (None: a same-document navigation, no main response)
            status = response.status
            for header in await response.headers_array():
                if header["name"].lower() not in _REPLACED:
                    headers.add(header["name"], header["value"])
        headers["Content-Type"] = "text/html; charset=utf-8"  # the DOM, serialised as UTF-8
        return status, headers

    async def _act(self, page: Any, request: Request) -> None:
        """The request's page actions and page hook (crawler/handlers/actions.py)."""
        meta = request._meta
        if not meta:
            return
        declared = meta.get("browser_actions")
        if declared:
            try:
                actions = check_actions(declared)
            except ValueError as exc:
                raise DownloadError(Kind.INVALID_REQUEST, str(exc), request) from None
            meta["browser_results"] = await run_actions(page, actions, self._timeout)
        hook = meta.get("browser_page")
        if hook is not None:
            if isinstance(hook, str):
                hook = getattr(self._spider, hook, None)
            if not callable(hook):
                raise DownloadError(Kind.INVALID_REQUEST, "meta['browser_page'] must name a "
                                    "spider method or be a callable", request)
            meta["browser_page_result"] = await call_page_hook(hook, page, self._timeout)
        for key, kind in (("browser_screenshot", "png"), ("browser_pdf", "pdf")):
            if meta.get(key):
                meta[key] = await self._keep_file(page, request, kind)

    async def _keep_file(self, page: Any, request: Request, kind: str) -> str:
        """A full-page screenshot (png) or a PDF of the page, written under
        browser_files_dir; its path."""
        if kind == "png":
            data = await asyncio.wait_for(page.screenshot(full_page=True), self._timeout)
        else:
            data = await asyncio.wait_for(page.pdf(), self._timeout)
        name = hashlib.sha1(request.url.encode()).hexdigest()[:20]  # a file name, not a secret
        path = Path(self._settings.browser_files_dir) / f"{name}.{kind}"
        await asyncio.to_thread(_write, path, data)
        self._stats.counters[f"browser/{kind}_files"] += 1
        return str(path)

    def _failure(self, browser: _Browser, exc: Exception, request: Request) -> DownloadError:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not browser.connected() or \
                "crash" in message.lower() or "closed" in message.lower():
            self._stats.counters["browser/crashes"] += 1
            return DownloadError(Kind.BROWSER_CRASH, f"the browser died: {message}", request)
        if "net::ERR_ADDRESS_UNREACHABLE" in message and self._guard:
            return DownloadError(Kind.FORBIDDEN_ADDRESS, f"{request.url}: refused by "
                                 "allow_private_addresses = false", request)
        for code, kind in _NET_KINDS.items():
            if f"net::{code}" in message:
                return DownloadError(kind, message, request)
        return DownloadError(Kind.BROWSER_ERROR, message, request)

    def _aside(self, awaitable: Any) -> None:
        """Run a page's chore (dismiss a dialog, close a popup) beside it, bounded."""
        task = asyncio.ensure_future(_quietly(awaitable))
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _context(self, browser: _Browser, key: str, request: Request) -> _Context:
        """The context for `key` in `browser`, launching it first when it is not running."""
        holder = browser.contexts.get(key)
        if holder is not None and browser.connected():
            return holder
        async with self._starting:
            if self._closed:
                raise DownloadError(Kind.BROWSER_ERROR, "the browser is closed", request)
            if not browser.connected():
                await self._launch(browser, request)
            holder = browser.contexts.get(key)
            if holder is None:
                holder = browser.contexts[key] = _Context(await self._new_context(browser))
            return holder

    async def _launch(self, browser: _Browser, request: Request) -> None:
        if browser.browser is not None:  # it died: what it held goes with it
            self._stats.counters["browser/restarts"] += 1
            logger.warning("browser %d died: launching it again", browser.index)
            with contextlib.suppress(Exception):
                await self._close_browser(browser)
        browser.contexts.clear()
        before = await asyncio.to_thread(roots, "chrom")  # the browsers launched so far
        try:
            browser.browser = await asyncio.wait_for(self._playwright.chromium.launch(
                executable_path=self._executable, headless=True, args=self._args),
                self._timeout)
        except Exception as exc:
            browser.browser = None
            raise DownloadError(Kind.BROWSER_ERROR, f"cannot launch Chromium "
                                f"({self._executable}): {str(exc).splitlines()[0]}",
                                request) from None
        new = await asyncio.to_thread(roots, "chrom") - before
        browser.pid = min(new) if len(new) == 1 else None  # (unknown: its memory unread)
        self._stats.counters["browser/launches"] += 1

    async def _new_context(self, browser: _Browser) -> Any:
        context = await browser.browser.new_context(
            accept_downloads=False, user_agent=self._settings.user_agent,
            ignore_https_errors=not self._settings.tls_verify)
        if self._block or self._guard:
            await context.route("**/*", self._filter)
        return context

    async def _filter(self, route: Any) -> None:
        request = route.request
        if request.resource_type in self._block:
            await route.abort()
        elif self._guard and not await self._public(request.url):
            self._stats.counters["browser/forbidden_address"] += 1
            await route.abort("addressunreachable")
        else:
            await route.continue_()

    async def _public(self, url: str) -> bool:
        """Whether every address `url`'s host resolves to is public (the SSRF guard of
        crawler/handlers/netguard.py, for the page's own requests; Chromium resolves the
        name again, so a name rebinding between the two is not caught: use a proxy for
        untrusted sites)."""
        try:
            host = URL(url).host
        except ValueError:
            return False
        if host is None:
            return url.startswith(("data:", "blob:", "about:"))
        known = self._verdicts.get(host)
        if known is not None:
            return known
        address = literal_address(host)
        if address is not None:
            allowed = not forbidden(address)
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            except OSError:
                return True  # Chromium fails it as it would anyway
            allowed = all(not forbidden(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
                          for info in infos)
        if len(self._verdicts) >= 10_000:
            self._verdicts.clear()
        self._verdicts[host] = allowed
        return allowed

    def _retire(self, browser: _Browser, holder: _Context) -> None:
        """Replace a context that rendered its share of pages: the next page makes a new
        one; this one is closed when the pages it is rendering are done."""
        if holder.retired:
            return
        holder.retired = True
        for key, other in list(browser.contexts.items()):
            if other is holder:
                del browser.contexts[key]
        self._stats.counters["browser/contexts_recycled"] += 1

    async def _close_context(self, holder: _Context) -> None:
        context, holder.context = holder.context, None
        holder.idle.clear()
        if context is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(context.close(), _CLOSE_TIMEOUT)

    async def _close_browser(self, browser: _Browser) -> None:
        running, browser.browser, browser.pid = browser.browser, None, None
        contexts = list(browser.contexts.values())
        browser.contexts.clear()
        browser.memory_mb = 0.0
        for holder in contexts:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(holder.context.close(), _CLOSE_TIMEOUT)
        if running is not None:
            await asyncio.wait_for(running.close(), _CLOSE_TIMEOUT)


def _write(path: Path, data: bytes) -> None:
    """Write `data` whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(path.suffix + ".part")
    part.write_bytes(data)
    os.replace(part, path)


def _set_cookie(cookie: dict[str, Any]) -> str:
    """A browser cookie as the Set-Cookie header the crawl's cookie jar stores."""
    parts = [f"{cookie['name']}={cookie['value']}", f"Path={cookie.get('path') or '/'}"]
    domain = cookie.get("domain") or ""
    if domain.startswith("."):
        parts.append(f"Domain={domain}")
    expires = cookie.get("expires", -1)
    if expires and expires > 0:
        parts.append(f"Max-Age={max(0, int(expires - time.time()))}")
    if cookie.get("secure"):
        parts.append("Secure")
    return "; ".join(parts)


async def _quietly(awaitable: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, _CLOSE_TIMEOUT)
