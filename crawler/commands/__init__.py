"""`python -m crawler`: the commands, one module each (crawler/commands/main.py parses)."""

from __future__ import annotations

from crawler.commands.main import main

__all__ = ["main"]
