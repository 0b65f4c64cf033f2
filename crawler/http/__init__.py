"""What spiders create and receive: requests, responses, failures, and the helpers around
them (links, URLs, encodings, compression, parsing, selectors)."""

from __future__ import annotations

from crawler.http._forms import FormRequest, JsonRequest
from crawler.http._request import HeadersArg, Request, request_callback_name
from crawler.http._response import Failure, Response

__all__ = ["Failure", "FormRequest", "HeadersArg", "JsonRequest", "Request",
           "Response", "request_callback_name"]
