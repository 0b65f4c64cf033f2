"""Telling someone how a monitored crawl went: a JSON webhook (or a Slack-compatible one)
and email over SMTP, sent when the crawl ends (on a failure, or always with
`monitor_notify = "always"`).

A notification that cannot be sent is logged and counted (`monitors/notify_failed`); it
never fails the crawl. Credentials stay out of sight: a webhook is named by its origin only
(a Slack webhook's path is its secret), the SMTP password by redaction.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
from yarl import URL

from crawler.core.plugins import PluginThread
from crawler.redact import redact

if TYPE_CHECKING:
    from crawler.extensions.monitors import MonitorResult
    from crawler.settings import Settings
    from crawler.stats import Stats

__all__ = ["message", "notify", "payload"]

logger = logging.getLogger(__name__)

_TIMEOUT = 15.0  # seconds a webhook or the SMTP server may take


async def notify(settings: Settings, stats: Stats, results: list[MonitorResult], *,
                 spider: str, reason: str) -> None:
    """Send what the settings ask for; never raises."""
    failed = [r for r in results if not r.passed]
    if not failed and settings.monitor_notify != "always":
        return
    subject, body = message(spider, reason, stats, results)
    if settings.monitor_webhook:
        await _guarded("webhook", stats, _post(settings, payload(
            settings.monitor_webhook_format, subject, body, spider, reason, stats, results)))
    if settings.monitor_email_to:
        # a daemon thread: an SMTP server that hangs cannot keep the process from exiting
        # after a second signal (the default executor's threads are waited for)
        thread = PluginThread()
        try:
            await _guarded("email", stats, thread.run(_send_mail, settings, subject, body))
        finally:
            thread.close()


async def _guarded(what: str, stats: Stats, sending: Any) -> None:
    try:
        await asyncio.wait_for(sending, _TIMEOUT + 5)
    except Exception as exc:
        stats.counters["monitors/notify_failed"] += 1
        logger.error("monitors: the %s could not be sent: %s", what,
                     redact(str(exc)) or type(exc).__name__)
    else:
        stats.counters[f"monitors/notified_{what}"] += 1


def message(spider: str, reason: str, stats: Stats, results: list[MonitorResult]
            ) -> tuple[str, str]:
    """A subject line and a plain-text body."""
    failed = [r for r in results if not r.passed]
    verdict = f"{len(failed)} of {len(results)} monitors failed" if failed \
        else f"all {len(results)} monitors passed"
    subject = f"crawl {spider}: {verdict} ({reason})"
    lines = [subject, "",
             f"{stats.pages} pages, {stats.items} items, {stats.requests_failed} failed "
             f"requests in {stats.elapsed_seconds:.1f} s", ""]
    lines += [f"{'PASS' if r.passed else 'FAIL'} {r.name}: {r.message}" for r in results]
    return subject, "\n".join(lines) + "\n"


def payload(fmt: str, subject: str, body: str, spider: str, reason: str, stats: Stats,
            results: list[MonitorResult]) -> dict[str, Any]:
    """The webhook's JSON: ours, or Slack's incoming-webhook shape (`text` and blocks)."""
    if fmt == "slack":
        return {"text": subject, "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(
                f"{':white_check_mark:' if r.passed else ':x:'} *{r.name}*: {r.message}"
                for r in results)[:3000]}}]}
    return {"spider": spider, "finish_reason": reason, "passed": all(r.passed for r in results),
            "summary": subject, "monitors": [r.as_dict() for r in results],
            "stats": {"pages": stats.pages, "items": stats.items,
                      "requests_failed": stats.requests_failed,
                      "elapsed_seconds": round(stats.elapsed_seconds, 3),
                      "errors": {str(k): v for k, v in stats.errors.items()}},
            "text": body}


async def _post(settings: Settings, data: dict[str, Any]) -> None:
    import aiohttp

    url = URL(settings.monitor_webhook or "")
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
            url, data=orjson.dumps(data), headers={"Content-Type": "application/json"},
            allow_redirects=False) as response:
        if response.status >= 300:
            raise RuntimeError(f"the webhook at {url.origin()} answered {response.status}")
    logger.info("monitors: results sent to the webhook at %s", url.origin())


def _send_mail(settings: Settings, subject: str, body: str) -> None:
    """Blocking (run in a thread): one message over SMTP; STARTTLS when the server offers
    it, TLS from the start with smtps://."""
    url = URL(settings.monitor_smtp)
    mail = EmailMessage()
    mail["Subject"], mail["From"] = subject, settings.monitor_email_from
    mail["To"] = ", ".join(settings.monitor_email_to)
    mail.set_content(body)
    host = url.host or "127.0.0.1"
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if url.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(host, url.port or 465, timeout=_TIMEOUT, context=context)
    else:
        smtp = smtplib.SMTP(host, url.port or 25, timeout=_TIMEOUT)
    with smtp:
        if url.scheme == "smtp":
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
        if url.user:
            smtp.login(unquote(url.user), unquote(url.password or ""))
        smtp.send_message(mail)
    logger.info("monitors: results emailed to %s", ", ".join(settings.monitor_email_to))
