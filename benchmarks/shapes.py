"""The sites the benchmarks crawl, by the shape of their links.

- `dup`: the generated 20,000-page site; 15 absolute links a page, most already seen.
- `tree`: an endless 15-ary tree served by nginx: every link on every page is new, as on a
  large site crawled for hours; crawled to a page cap (the frontier grows ~14 per page).
- `pgdocs`, `pydocs`: real documentation served as files, with relative links
  (`sql-select.html`, `../library/os.html#os.path`): Debian's `postgresql-doc-15`
  (1,169 pages) and `python3.11-doc` (528 pages, some over 1 MB with 17,000+ links).
  `apt-get install -y postgresql-doc-15 python3.11-doc`; absent packages are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.site import generate

HERE = Path(__file__).resolve().parent
_DOCS = {
    "pgdocs": ("/usr/share/doc/postgresql-doc-15/html", "postgresql-doc-15",
               "PostgreSQL 15 manual (Debian postgresql-doc-15), relative links"),
    "pydocs": ("/usr/share/doc/python3.11/html", "python3.11-doc",
               "Python 3.11 documentation (Debian python3.11-doc), relative links"),
}


@dataclass(frozen=True)
class Shape:
    name: str
    title: str
    root: Path | None  # what to serve; None: the endless tree
    start: str  # the start page's path
    max_pages: int | None  # a page cap, for sites with no end
    expected: int | None  # pages every contender must write from one host, when known

    def expected_for(self, hosts: int) -> int | None:
        """Pages every contender must write when the site is served as `hosts` hosts (a
        page cap is for the whole crawl)."""
        if self.expected is None or self.max_pages is not None:
            return self.expected
        return self.expected * hosts


def shape(name: str, pages: int = 20_000) -> Shape:
    """The named shape; raises LookupError (saying what to install) when unavailable."""
    if name == "dup":
        root = generate(HERE / ".sites" / str(pages), pages)
        return Shape(name, f"{pages:,} pages, 15 links each, most already seen", root,
                     "p/0.html", None, pages)
    if name == "tree":
        return Shape(name, f"{pages:,} pages of an endless tree, 15 new links on every page",
                     None, "t", pages, pages)
    if name in _DOCS:
        path, package, title = _DOCS[name]
        if not (Path(path) / "index.html").exists():
            raise LookupError(f"{name}: install Debian's {package} (apt-get install -y "
                              f"{package})")
        return Shape(name, title, Path(path), "index.html", None, None)
    raise LookupError(f"unknown shape {name!r}: dup, tree, pgdocs or pydocs")
