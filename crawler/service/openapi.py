"""The crawl service's OpenAPI document (served at /openapi.json): every route of
crawler/service/api.py, its parameters, bodies and answers."""

from __future__ import annotations

from typing import Any

from crawler._version import __version__

__all__ = ["document"]

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_ERROR = {"description": "what was wrong, in one line", "content": {"application/json": {
    "schema": {"type": "object", "properties": {"error": {"type": "string"}},
               "required": ["error"]}}}}
_JSON = {"content": {"application/json": {"schema": {"type": "object"}}}}
_TOKEN: list[dict[str, list[str]]] = [{"token": []}]
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_RUN = {"type": "object", "required": ["id", "spider", "state"], "properties": {
    "id": {"type": "string"}, "spider": {"type": "string"},
    "state": {"type": "string", "enum": ["queued", "running", "pausing", "paused",
                                         "cancelling", "finished", "failed", "cancelled"]},
    "args": _STRINGS, "settings": _STRINGS, "priority": {"type": "integer"},
    "created": {"type": "number"}, "started": {"type": ["number", "null"]},
    "finished": {"type": ["number", "null"]}, "pid": {"type": ["integer", "null"]},
    "exit_code": {"type": ["integer", "null"]},
    "finish_reason": {"type": ["string", "null"]}, "stats": {"type": "object"},
    "attempts": {"type": "integer"}, "schedule": {"type": ["string", "null"]},
    "workers": {"type": "integer"},
    "live": {"type": ["object", "null"]}}}
_SCHEDULE_IN = {"type": "object", "properties": {
    "spider": {"type": "string"}, "cron": {"type": "string"},
    "every": {"type": "number", "minimum": 1}, "timezone": {"type": "string"},
    "args": _STRINGS, "settings": _STRINGS, "priority": {"type": "integer"},
    "overlap": {"type": "string", "enum": ["skip", "queue"]},
    "missed": {"type": "string", "enum": ["once", "skip"]}, "enabled": {"type": "boolean"}}}
_PAGE = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                      "maximum": 1000}},
         {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}]


def _op(summary: str, answers: dict[str, Any], *, changes: bool = False,
        parameters: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, form: dict[str, Any] | None = None,
        ) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": answers}
    if changes:
        op["security"] = _TOKEN
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
    if form is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": form}}}
    return op


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    run = {"description": "the run", "content": {"application/json": {"schema": _RUN}}}
    missing = {"404": _ERROR}
    refused = {"401": _ERROR, "403": _ERROR}
    action = {"200": run, "404": _ERROR, "409": _ERROR, **refused}
    paths: dict[str, Any] = {
        "/api/spiders": {"get": _op("the project's spiders and their arguments",
                                    {"200": _JSON})},
        "/api/runs": {
            "get": _op("runs, newest first", {"200": _JSON, "400": _ERROR}, parameters=[
                {"name": "state", "in": "query", "schema": {"type": "string"},
                 "description": "states, comma-separated"},
                {"name": "spider", "in": "query", "schema": {"type": "string"}}, *_PAGE]),
            "post": _op("start a run (queued until a place is free)",
                        {"201": run, "400": _ERROR, "404": _ERROR, **refused}, changes=True,
                        body={"type": "object", "required": ["spider"], "properties": {
                            "spider": {"type": "string"}, "args": _STRINGS,
                            "settings": _STRINGS, "priority": {"type": "integer"},
                            "workers": {"type": "integer", "minimum": 1, "maximum": 64}}})},
        "/api/runs/{id}": {"get": _op("one run, with its live numbers while it runs",
                                      {"200": run, **missing}, parameters=[_ID])},
        **{f"/api/runs/{{id}}/{name}": {"post": _op(summary, action, changes=True,
                                                    parameters=[_ID])}
           for name, summary in (("pause", "stop gracefully, keep resumable"),
                                 ("resume", "queue a paused run again"),
                                 ("cancel", "stop gracefully, then kill after the grace"))},
        "/api/runs/{id}/log": {"get": _op("the end of the run's log", {
            "200": {"description": "text", "content": {"text/plain": {}}}, **missing},
            parameters=[_ID, {"name": "tail", "in": "query",
                              "schema": {"type": "integer", "minimum": 1}}])},
        "/api/runs/{id}/items": {"get": _op("the run's items, paged", {
            "200": _JSON, "400": _ERROR, **missing}, parameters=[_ID, *_PAGE])},
        "/api/runs/{id}/items.jl": {"get": _op("the run's output, whole (JSON lines)", {
            "200": {"description": "JSON lines", "content": {"application/x-ndjson": {}}},
            **missing}, parameters=[_ID])},
        "/api/schedules": {
            "get": _op("the schedules", {"200": _JSON}),
            "post": _op("make a schedule", {"201": _JSON, "400": _ERROR, "404": _ERROR,
                                            **refused}, changes=True,
                        body={**_SCHEDULE_IN, "required": ["spider"]})},
        "/api/schedules/{id}": {
            "get": _op("one schedule", {"200": _JSON, **missing}, parameters=[_ID]),
            "put": _op("change a schedule", {"200": _JSON, "400": _ERROR, **missing,
                                             **refused}, changes=True, parameters=[_ID],
                       body=_SCHEDULE_IN),
            "delete": _op("delete a schedule", {"200": _JSON, **missing, **refused},
                          changes=True, parameters=[_ID])},
        "/api/schedules/{id}/run": {"post": _op("run a schedule now", {
            "201": run, **missing, **refused}, changes=True, parameters=[_ID])},
        "/api/status": {"get": _op("the service: runs by state, disk use", {"200": _JSON})},
        "/metrics": {"get": _op("Prometheus metrics", {
            "200": {"description": "text", "content": {"text/plain": {}}}})},
        "/schedule.json": {"post": _op("Scrapyd: schedule a job", {"200": _JSON, **refused},
                                       changes=True, form={
            "type": "object", "required": ["project", "spider"], "properties": {
                "project": {"type": "string"}, "spider": {"type": "string"},
                "setting": {"type": "string"}, "jobid": {"type": "string"},
                "priority": {"type": "number"}}})},
        "/cancel.json": {"post": _op("Scrapyd: cancel a job", {"200": _JSON, **refused},
                                     changes=True, form={
            "type": "object", "required": ["project", "job"], "properties": {
                "project": {"type": "string"}, "job": {"type": "string"}}})},
        "/listjobs.json": {"get": _op("Scrapyd: the jobs", {"200": _JSON}, parameters=[
            {"name": "project", "in": "query", "schema": {"type": "string"}}])},
        "/listspiders.json": {"get": _op("Scrapyd: the spiders", {"200": _JSON}, parameters=[
            {"name": "project", "in": "query", "schema": {"type": "string"}}])},
        "/daemonstatus.json": {"get": _op("Scrapyd: the service", {"200": _JSON})},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "crawler service", "version": __version__,
                     "description": "Runs of a crawler project's spiders: start, watch, "
                                    "pause, resume, cancel, schedule."},
            "paths": paths,
            "components": {"securitySchemes": {"token": {
                "type": "apiKey", "in": "header", "name": "X-Crawler-Token"}}}}
