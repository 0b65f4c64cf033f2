"""Serve a generated site on 127.0.0.1 ports: nginx when installed, else aiohttp (slower)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from crawler.commands.benchsite import _FILLER, FANOUT

__all__ = ["NO_VALIDATORS", "free_ports", "local_ca", "serve", "spider_project",
           "tree_filler", "tree_page"]

_NGINX_CONF = """
{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {access_log};
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 60;
    default_type text/html;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    {servers}
}}
"""
_SERVER = "server {{ listen 127.0.0.1:{port}{tls}; root {root}; {extra} }}"
# HTTPS (and HTTP/2 over it, by ALPN) with a certificate and its key
_TLS = " ssl http2"
_TLS_FILES = "ssl_certificate {cert}; ssl_certificate_key {key}; "
# a server that sends no validators and ignores conditional requests
NO_VALIDATORS = 'etag off; if_modified_since off; add_header Last-Modified "";'

# An endless 15-ary tree: every page links to 15 pages below it, none seen before. nginx
# takes parameters of at most 4 KiB, so the filler is a variable of its own.
_TREE_SERVER = ("server {{ listen 127.0.0.1:{port}; location = /robots.txt {{ return 404; }} "
                "location / {{ set $filler '{filler}'; return 200 '{page}'; }} }}")


def free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def tree_page(uri: str, size: int = 4096, fanout: int = FANOUT,
              filler: str | None = None) -> str:
    """A page of the endless tree at `uri` (for nginx: "$uri", and filler "$filler")."""
    links = "".join(f'<li><a href="{uri}/{k}">page {k}</a></li>' for k in range(1, fanout + 1))
    head = (f'<!doctype html><html><head><meta charset="utf-8"><title>Page {uri}</title>'
            f"</head><body><h1>Heading {uri}</h1><ul>{links}</ul><p>")
    tail = "</p></body></html>\n"
    return head + (filler if filler is not None else tree_filler(size, len(head))) + tail


def tree_filler(size: int = 4096, used: int = 700) -> str:
    """Text that brings a tree page to about `size` bytes."""
    room = max(0, size - used)
    return (_FILLER * (room // len(_FILLER) + 1))[:room]


@contextlib.contextmanager
def serve(root: Path | list[Path] | None, hosts: int = 1, *,
          access_log: Path | None = None, log_format: str = "$request_uri",
          extra: str = "", tls: tuple[Path, Path] | None = None,
          ) -> Iterator[tuple[str, list[str]]]:
    """Serve `root` (None: the endless tree; a list: one root per host) as `hosts` distinct
    hosts (one port each); yields (server, base URLs). `access_log`: nginx logs each
    request there, a line each, as `log_format` says (to count fetches and bytes);
    `extra`: nginx directives for each server of `root` (NO_VALIDATORS); `tls`: a
    certificate and its key (PEM files) to serve HTTPS with, HTTP/2 offered by ALPN
    (nginx only; `local_ca()` makes them)."""
    roots = root if isinstance(root, list) else [root] * hosts if root else None
    ports = free_ports(hosts)
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    with tempfile.TemporaryDirectory(prefix="crawler-bench-") as tmp:
        if nginx:
            if root is None:
                page = tree_page("$uri", filler="$filler")
                blocks = [_TREE_SERVER.format(port=p, page=page, filler=tree_filler())
                          for p in ports]
            else:
                assert roots is not None
                files = _TLS_FILES.format(cert=tls[0], key=tls[1]) if tls else ""
                blocks = [_SERVER.format(port=p, root=r.resolve(), extra=files + extra,
                                         tls=_TLS if tls else "")
                          for p, r in zip(ports, roots, strict=True)]
            servers = "\n    ".join(blocks)
            conf = Path(tmp) / "nginx.conf"
            # run as root, nginx's workers drop to nobody, who cannot read a 0700 checkout
            user = "user root;\n" if os.geteuid() == 0 else ""
            log = "access_log off" if access_log is None else \
                f"log_format uris '{log_format}'; access_log {access_log} uris"
            conf.write_text(_NGINX_CONF.format(user=user, tmp=tmp, servers=servers,
                                               access_log=log))
            cmd = [nginx, "-c", str(conf), "-p", tmp, "-e", f"{tmp}/error.log"]
            kind = "nginx"
        else:
            if isinstance(root, list) or access_log is not None or extra or tls:
                raise RuntimeError("one root per host, an access log, HTTPS or nginx "
                                   "directives need nginx")
            cmd = [sys.executable, "-m", "benchmarks.static", str(root or "--tree"),
                   *map(str, ports)]
            kind = "aiohttp (nginx not installed: slower server, lower figures)"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for p in ports:
                _wait_listening(p)
            scheme = "https" if tls else "http"
            yield kind, [f"{scheme}://127.0.0.1:{p}/" for p in ports]
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def local_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signed for 127.0.0.1 and localhost (trustme):
    (the CA's PEM, the certificate chain's, its key's), written in `directory`."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca.cert_pem.write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[2]))
    with paths[1].open("wb") as chain:
        for blob in cert.cert_chain_pems:
            chain.write(blob.bytes())
    return paths


def spider_project(root: Path, name: str, source: str) -> Path:
    """A project directory at `root` whose spiders/NAME.py is `source`, for a crawl run as
    `python -m crawler run NAME` from it; `root`."""
    (root / "spiders").mkdir(parents=True, exist_ok=True)
    (root / "spiders" / "__init__.py").write_text("")
    (root / "spiders" / f"{name}.py").write_text(source)
    return root
