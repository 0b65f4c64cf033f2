"""Fail responses whose status the spider did not ask for (Scrapy's HttpErrorMiddleware).

2xx pass; so does any status in the spider's `handle_httpstatus_list`, the request's
`meta["handle_httpstatus_list"]`, or every status with `meta["handle_httpstatus_all"]`.
Anything else raises HttpError (counted as `http_<status>`; the errback gets the response).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.exceptions import HttpError
from crawler.http import Request, Response

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["HttpErrorMiddleware", "handles"]


def handles(handled: frozenset[int], request: Request, status: int) -> bool:
    """Whether the spider (`handled`) or the request's meta asks for `status`."""
    if status in handled:
        return True
    meta = request._meta
    return bool(meta) and (bool(meta.get("handle_httpstatus_all"))  # type: ignore[union-attr]
                           or status in meta.get("handle_httpstatus_list", ()))  # type: ignore[union-attr]


class HttpErrorMiddleware:
    def __init__(self, handled: frozenset[int] = frozenset()) -> None:
        self._handled = handled

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> HttpErrorMiddleware:
        return cls(frozenset(crawler.spider.handle_httpstatus_list))

    def process_response(self, request: Request, response: Response) -> Response:
        status = response.status
        if 200 <= status < 300 or handles(self._handled, request, status):
            return response
        raise HttpError(response)
