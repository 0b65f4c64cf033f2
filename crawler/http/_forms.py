"""JsonRequest and FormRequest (with `from_response`): requests that carry data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from yarl import URL

from crawler.http._request import Request, _header_list

if TYPE_CHECKING:
    from crawler.http._response import Response

__all__ = ["FormRequest", "JsonRequest"]


class JsonRequest(Request):
    """A request with a JSON body (Scrapy's `JsonRequest`): `data` is serialised with sorted
    keys, the method becomes POST unless given, and Content-Type/Accept are set.

    Usage:
        yield JsonRequest("https://api.example.com/search", data={"q": "books"})
    """

    __slots__ = ()

    def __init__(self, url: str | URL, *args: Any, data: Any = None, **kwargs: Any) -> None:
        if data is not None:
            kwargs.setdefault("body", orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
            if len(args) < 2:  # method not given positionally
                kwargs.setdefault("method", "POST")
        headers = _header_list(kwargs.pop("headers", None))
        names = {str(name).lower() for name, _ in headers}
        for name, value in (("Content-Type", "application/json"),
                            ("Accept", "application/json, text/javascript, */*; q=0.01")):
            if name.lower() not in names:
                headers.append((name, value))
        kwargs["headers"] = headers
        super().__init__(url, *args, **kwargs)


class FormRequest(Request):
    """A request carrying form fields (Scrapy's `FormRequest`): POSTed as
    application/x-www-form-urlencoded, or added to the query string when the method is GET.

    Usage:
        yield FormRequest("https://example.com/login", formdata={"user": "a", "pass": "b"})
    """

    __slots__ = ()

    def __init__(self, url: str | URL, *args: Any,
                 formdata: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        if formdata is None:
            super().__init__(url, *args, **kwargs)
            return
        pairs = list(formdata.items() if isinstance(formdata, Mapping) else formdata)
        encoded = urlencode([(k, v) for k, value in pairs
                             for v in (value if isinstance(value, list | tuple) else [value])])
        method = args[1] if len(args) >= 2 else kwargs.pop("method", "POST")
        if str(method).upper() == "GET":
            base = str(url).split("#", 1)[0]
            url = f"{base}{'&' if '?' in base else '?'}{encoded}"
        else:
            kwargs.setdefault("body", encoded)
            headers = _header_list(kwargs.pop("headers", None))
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            kwargs["headers"] = headers
        if len(args) >= 2:
            args = (args[0], method, *args[2:])
        else:
            kwargs["method"] = method
        super().__init__(url, *args, **kwargs)

    @classmethod
    def from_response(cls, response: Response, *, formname: str | None = None,
                      formid: str | None = None, formnumber: int = 0,
                      formxpath: str | None = None, formcss: str | None = None,
                      formdata: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
                      clickdata: Mapping[str, Any] | None = None, dont_click: bool = False,
                      method: str | None = None, **kwargs: Any) -> FormRequest:
        """A request submitting a form of `response`, its fields pre-filled from the page
        and overridden by `formdata` (Scrapy's `FormRequest.from_response`, built on
        form2request as Scrapy recommends; the `selectors` extra).

        The form: by `formxpath`, `formcss`, `formid` or `formname`, else the
        `formnumber`-th. The button clicked: the first submit button, the one whose
        attributes match `clickdata` ({"name": "go"}, or {"nr": 1} for the second), or
        none with `dont_click`. Other keyword arguments go to the Request (callback,
        meta, ...).

        Usage:
            yield FormRequest.from_response(response, formdata={"user": "a", "pass": "b"},
                                            callback=self.after_login)
        """
        from crawler.http.selectors import form_request_data

        url, form_method, headers, body = form_request_data(
            response, formname=formname, formid=formid, formnumber=formnumber,
            formxpath=formxpath, formcss=formcss, formdata=formdata, clickdata=clickdata,
            dont_click=dont_click, method=method)
        headers = [*headers, *_header_list(kwargs.pop("headers", None))]
        return cls(url, method=form_method, headers=headers, body=body, **kwargs)


