"""Shared browser-test fixtures: one headless Chromium per session and a tiny static file server.

    def test_page(browser, serve_dir, tmp_path):
        base = serve_dir(built_site)          # http://127.0.0.1:<free port>/
        page = browser.new_page()
        page.goto(base + "post/")

Every test under tests/browser is marked ``browser``; the session skips them all when Debian's
chromium is not installed.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def playwright_session():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_session):
    """A headless Chromium shared by the whole session; tests open their own pages/contexts."""
    b = playwright_session.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield b
    b.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                      ".xml": "application/xml", ".bin": "application/octet-stream"}

    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture(scope="session")
def serve_dir():
    """``serve_dir(path) -> base_url``: serve a folder over HTTP on 127.0.0.1 (a free port) until the
    session ends. The URL ends with '/'."""
    servers = []

    def serve(path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(path))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()
