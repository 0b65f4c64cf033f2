import crawler


def test_all_is_sorted_and_importable():
    assert crawler.__all__ == sorted(crawler.__all__)
    for name in crawler.__all__:
        assert hasattr(crawler, name), name


def test_every_module_imports_alone_without_warnings():
    """Each module imported first, in a fresh interpreter, with warnings as errors: an
    import cycle or a deprecated API shows here (aiohttp's test_circular_imports)."""
    import pkgutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(crawler.__file__).parent
    modules = ["crawler"] + [  # every package and module, subpackages' included
        m.name for m in pkgutil.walk_packages([str(root)], prefix="crawler.")
        if not m.name.endswith("__main__")]
    assert {"crawler.core.engine", "crawler.frontier", "crawler.frontier.memory",
            "crawler.http._request", "crawler.commands"} <= set(modules)
    for module in sorted(set(modules)):
        done = subprocess.run([sys.executable, "-W", "error", "-c", f"import {module}"],
                              cwd=root.parent, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{module}: {done.stderr[-1500:]}"


def test_the_types_crawler_takes_are_exported():
    for name in ("Downloader", "HttpDownloader", "Exporter", "make_exporter", "Frontier",
                 "MemoryFrontier", "Stats", "Kind"):
        assert name in crawler.__all__
