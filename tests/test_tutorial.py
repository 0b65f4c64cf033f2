"""The tutorial (docs/tutorial.md), followed line by line: its commands run as written (the
demo shop's port aside), its spider is the one written to disk, and what it shows each command
print is what they print."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, spawn

pytestmark = pytest.mark.slow


def _blocks(text: str) -> list[tuple[str, str]]:
    section = text.split("<!-- tutorial:start -->")[1].split("<!-- tutorial:end -->")[0]
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", section,
                                                          re.DOTALL)]


async def _run(args: list[str], cwd: Path, stdin: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args, cwd=cwd, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    out, err = await asyncio.wait_for(proc.communicate((stdin or "").encode()), 120)
    assert proc.returncode == 0, (args, err.decode()[-3000:])
    return out.decode()


async def _wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"the demo shop never listened on {port}")


async def test_the_tutorial_runs_verbatim(tmp_path):
    background: list[asyncio.subprocess.Process] = []
    try:
        await _follow(tmp_path, background)
    finally:
        for proc in background:
            proc.kill()
            await proc.communicate()


async def _follow(tmp_path: Path, background: list[asyncio.subprocess.Process]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = (ROOT / "docs" / "tutorial.md").read_text() \
        .replace("127.0.0.1:8000", f"127.0.0.1:{port}") \
        .replace("--port 8000", f"--port {port}")
    cwd = tmp_path
    pending_shell: list[str] | None = None
    last_out = ""
    steps = 0
    for lang, body in _blocks(text):
        if lang == "bash":
            last_out = ""
            for line in body.strip().splitlines():
                line = line.split("  #")[0].strip()
                steps += 1
                if line.endswith("&"):  # the shop, in the background
                    args = shlex.split(line[:-1])
                    assert args[:3] == ["python", "-m", "crawler"]
                    background.append(
                        await spawn(sys.executable, "-m", "crawler", *args[3:], cwd=cwd))
                    await _wait_for_port(port)
                elif line.startswith("mkdir "):
                    name = line.split()[1]
                    assert line == f"mkdir {name} && cd {name}"
                    cwd = cwd / name
                    cwd.mkdir()
                elif line.startswith("wc -l "):
                    name = line.split()[2]
                    count = len((cwd / name).read_bytes().splitlines())
                    last_out += f"{count} {name}\n"
                else:
                    args = shlex.split(line)
                    assert args[:3] == ["python", "-m", "crawler"], line
                    if args[3] == "shell":
                        pending_shell = args[3:]
                    else:
                        last_out += await _run(args[3:], cwd)
        elif lang == "python":
            (cwd / "spiders" / "shop.py").write_text(body)
        else:  # what the commands before print
            lines = body.strip().splitlines()
            if pending_shell is not None:
                stdin = "".join(line[4:] + "\n" for line in lines if line.startswith(">>> "))
                last_out = await _run(pending_shell, cwd, stdin)
                pending_shell = None
            for line in lines:
                if not line.startswith(">>> ") and line != "...":
                    assert line in last_out, (line, last_out[-3000:])
                elif line.startswith(">>> depth"):
                    assert line in last_out, (line, last_out[-3000:])
    assert steps >= 9 and pending_shell is None
