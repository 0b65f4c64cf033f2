"""Recrawls: a job's pages visited again, each judged new, changed, unchanged or gone.

A job directory keeps, for every page it fetched, the request to fetch it again, its
validators (ETag, Last-Modified), a digest of its body, when it was fetched, when it last
changed and its revisit interval (crawler/recrawl/history.py says how each is decided).
`run --job-dir D --recrawl` starts a new round of a finished job from that history
(crawler/frontier/jobdir.py); each request's visit (crawler/recrawl/visits.py, driven by
the job's storage) sends the conditional headers, judges the response and keeps the
outcome with the page's items; `--changes FILE` is the change feed (feed.py).
"""

from crawler.recrawl.feed import ChangeFeed
from crawler.recrawl.history import Change, Visit, judge, next_interval

__all__ = ["Change", "ChangeFeed", "Visit", "judge", "next_interval"]
