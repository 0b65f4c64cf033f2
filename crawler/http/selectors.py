"""Scrapy-style selectors (parsel) over a response, built only when a spider asks.

`response.css()` stays selectolax (fast, CSS only); `response.sel` is a parsel `Selector`
for code written for Scrapy: `::text`, `::attr(name)`, `.get()`, `.getall()`, `.re()` and
XPath. parsel brings lxml, so it is the optional `selectors` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.exceptions import CrawlerError

if TYPE_CHECKING:
    from crawler.http import Response

__all__ = ["MissingParsel", "form_request_data", "selector_for"]

_XML_TYPES = ("application/xml", "text/xml", "application/rss+xml", "application/atom+xml")


class MissingParsel(CrawlerError):
    """`response.sel` or `response.xpath()` without parsel installed."""


def selector_for(response: Response) -> Any:
    """A parsel Selector over the response's text: XML for XML content types, else HTML."""
    try:
        from parsel import Selector
    except ImportError:
        raise MissingParsel("response.sel and response.xpath() need parsel: "
                            "pip install 'crawler[selectors]'") from None
    content_type = response.content_type
    kind = "xml" if content_type in _XML_TYPES or content_type.endswith("+xml") else "html"
    return Selector(text=response.text, type=kind, base_url=response.url)


def form_request_data(response: Response, *, formname: str | None, formid: str | None,
                      formnumber: int, formxpath: str | None, formcss: str | None,
                      formdata: Any, clickdata: Any, dont_click: bool,
                      method: str | None) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """(url, method, headers, body) of a form's submission (FormRequest.from_response),
    from form2request; ValueError naming what was not found."""
    try:
        from form2request import form2request
    except ImportError:
        raise MissingParsel("FormRequest.from_response needs parsel and form2request: "
                            "pip install 'crawler[selectors]'") from None
    form = _form(response.sel, formname=formname, formid=formid, formnumber=formnumber,
                 formxpath=formxpath, formcss=formcss, url=response.url)
    click: Any = False if dont_click else _clickable(form, clickdata) if clickdata else None
    data = dict(formdata) if isinstance(formdata, dict) else formdata
    request = form2request(form, data, click=click, method=method)
    return request.url, request.method, list(request.headers), request.body


def _form(sel: Any, *, formname: str | None, formid: str | None, formnumber: int,
          formxpath: str | None, formcss: str | None, url: str) -> Any:
    def named(query: str, what: str) -> Any:
        found = sel.xpath(query)
        if not found:
            raise ValueError(f"no form {what} in {url}")
        return found[0]

    for where, how in ((formxpath, "xpath"), (formcss, "css")):
        if where is not None:  # the element found, or the form around it
            elements = getattr(sel, how)(where)
            forms = elements[0].xpath("ancestor-or-self::form") if elements else []
            if not forms:
                raise ValueError(f"no form at {where!r} in {url}")
            return forms[-1]
    if formid is not None:
        return named(f"//form[@id={_literal(formid)}]", f"with id {formid!r}")
    if formname is not None:
        return named(f"//form[@name={_literal(formname)}]", f"named {formname!r}")
    forms = sel.xpath("//form")
    if not forms:
        raise ValueError(f"no form in {url}")
    if not 0 <= formnumber < len(forms):
        raise ValueError(f"no form number {formnumber} in {url} ({len(forms)} form(s))")
    return forms[formnumber]


def _clickable(form: Any, clickdata: dict[str, Any]) -> Any:
    """The submit element whose attributes match `clickdata` (its "nr": the n-th)."""
    clickables = form.xpath(
        'descendant::input[re:test(@type, "^(submit|image)$", "i")]'
        '|descendant::button[not(@type) or re:test(@type, "^submit$", "i")]',
        namespaces={"re": "http://exslt.org/regular-expressions"})
    wanted = {k: v for k, v in clickdata.items() if k != "nr"}
    matching = [c for c in clickables
                if all(c.attrib.get(k) == str(v) for k, v in wanted.items())]
    nr = int(clickdata.get("nr", 0))
    if not 0 <= nr < len(matching):
        raise ValueError(f"no clickable element matching {clickdata!r} in the form")
    return matching[nr].root


def _literal(text: str) -> str:
    return f'"{text}"' if '"' not in text else f"'{text}'"
