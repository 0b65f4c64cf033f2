"""Sphinx configuration: the crawler's documentation site.

Built with `python -m sphinx -W --keep-going -b html docs docs/_build/html` (what
.ci/run does: any warning, a broken internal link included, fails the build). Nothing is
fetched from the network: no intersphinx, the theme's assets ship in its package.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "_ext"), str(HERE.parent)]

from crawler import __version__  # noqa: E402

project = "crawler"
author = "the crawler's authors"
copyright = "2026, the crawler's authors"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",            # the pages are Markdown (CommonMark + MyST's directives)
    "sphinx.ext.autodoc",     # the API reference, from the docstrings
    "sphinx.ext.viewcode",
    "crawler_docs",           # the generated references: settings, CLI, signals, kinds
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
# _generated/ pages are written by crawler_docs before each build and included by the
# reference pages; they are never hand-edited (nor committed)

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3          # [text](page.md#a-heading) links are checked too
suppress_warnings: list[str] = []
nitpicky = False                  # types of other libraries (aiohttp, ...) are not linked

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

default_role = "code"  # `name` in a docstring is code, as in the Markdown pages
html_theme = "furo"
html_title = f"crawler {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
