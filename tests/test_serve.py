"""The preview server, end to end: a real server on a free port over a temporary site, real files
edited on disk, a real client of the reload stream (server-sent events) listening the way the
browser's reload script does.

Nothing here measures time; waits have generous deadlines and end as soon as the awaited thing
happens (benchmarks live in bench/serve_latency.py).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sitegen.build import Builder
from sitegen.serve import reload
from sitegen.serve import PreviewServer, PortInUse, content_type, inject, is_editor_noise, locate

REPO = Path(__file__).resolve().parent.parent
WAIT = 30  # seconds: a deadline for things that normally take milliseconds


# ---------------------------------------------------------------------------------------------
# a reload-stream client, reading server-sent events the way the browser's EventSource does

class Client:
    def __init__(self, port: int, origin: str | None = None, host: str | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        lines = ["GET /__sitegen/events HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}",
                 "Accept: text/event-stream", "Cache-Control: no-cache"]
        if origin:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        self.status = int(head.split()[1]) if head else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in
                        (line.decode("latin-1").partition(":") for line in head.split(b"\r\n")[1:])}
        self.messages: list[dict] = []
        self.comments = 0  # keep-alive lines seen

    def _line(self, deadline: float) -> bytes:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the server in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the stream")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def recv(self, timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout  # keep-alive comments from the server do not extend it
        data: list[str] = []
        while True:
            line = self._line(deadline)
            if not line:  # a blank line ends an event
                if data:
                    msg = json.loads("\n".join(data))
                    self.messages.append(msg)
                    return msg
                continue
            if line.startswith(b":"):
                self.comments += 1
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                data.append(value[1:].decode() if value.startswith(b" ") else value.decode())

    def until(self, pred, timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.1, deadline - time.monotonic()))
            if pred(msg):
                return msg

    def close(self) -> None:
        self.sock.close()


def built(msg):
    return msg["type"] == "built"


def failed(msg):
    return msg["type"] == "failed"


# ---------------------------------------------------------------------------------------------
# fixtures

POST = """\
---
title: {title}
date: {date}
tags: [{tag}]
---

{body}
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_site(root: Path) -> Path:
    write(root, "sitegen.toml", 'title = "Preview test"\n')
    write(root, "content/alpha.md", POST.format(title="Alpha", date="2024-01-01", tag="greek",
                                                body="Alpha's first paragraph.\n\nMore about alpha."))
    write(root, "content/beta.md", POST.format(title="Beta", date="2024-01-02", tag="greek",
                                               body="Beta's first paragraph."))
    write(root, "content/gamma.md", POST.format(title="Gamma", date="2024-01-03", tag="greek",
                                                body="Gamma's first paragraph."))
    write(root, "data/table.csv", "x,y\n1,2\n2,4\n3,8\n")
    write(root, "content/charted.md", POST.format(title="Charted", date="2024-01-04", tag="data", body=textwrap.dedent("""\
        A chart of the table.

        ```{chart} data/table.csv
        :x: x
        :y: y
        :caption: y against x.
        ```
        """)))
    write(root, "static/extra.css", "body { margin: 0; }\n")
    return root


class Preview:
    """A started PreviewServer plus helpers to talk to it."""

    def __init__(self, root: Path, **kwargs):
        self.root = root
        self.lines: list[str] = []
        self.server = PreviewServer(root, port=0, log=self.lines.append, **kwargs).start()
        self.port = self.server.port

    def get(self, path: str, headers: dict | None = None, method: str = "GET"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, dict(resp.getheaders()), body

    def raw(self, request: bytes) -> bytes:
        """Send bytes exactly as given (no client-side path normalisation) and read the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) as s:
            s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data

    def client(self, **kwargs) -> Client:
        c = Client(self.port, **kwargs)
        assert c.status == 200 and c.headers["content-type"] == "text/event-stream"
        hello = c.recv()
        assert hello["type"] == "hello"
        return c

    def seen(self, *paths: Path) -> None:
        """Wait until the watcher has passed on every event so far in the folders of ``paths``.

        A hidden marker file is ignored as editor noise but still passes through the watcher, and
        events from one folder arrive in order, so once the marker is seen nothing is in flight.
        """
        for folder in {p.parent for p in paths} or {self.root / "content"}:
            marker = folder / f".settle-{time.monotonic_ns()}"
            seen = self.server.watcher.expect(str(marker))
            marker.write_text("")
            assert seen.wait(WAIT), "the watcher never reported the marker file"
            marker.unlink()

    def settle(self, *paths: Path) -> None:
        """Wait until every event so far has arrived and no rebuild is pending or running."""
        self.seen(*paths)
        assert self.server.wait_idle(WAIT)

    def stop(self):
        self.server.stop()


@pytest.fixture
def preview(tmp_path):
    p = Preview(make_site(tmp_path / "site"))
    yield p
    p.stop()


# ---------------------------------------------------------------------------------------------
# pure helpers

def test_locate_refuses_everything_outside_the_output(tmp_path):
    out = tmp_path / "out"
    write(out, "index.html", "home")
    write(out, "post/index.html", "post")
    write(out, "static/style.css", "css")
    write(tmp_path, "secret.txt", "secret")
    (out / "leak").symlink_to(tmp_path / "secret.txt")
    (out / "leakdir").symlink_to(tmp_path, target_is_directory=True)
    real = os.path.realpath(out)
    for target in ["/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/..%2fsecret.txt",
                   "/post/../../secret.txt", "/post/%2e%2e/%2e%2e/secret.txt", "/leak", "/leakdir/secret.txt",
                   "/leakdir/", "//etc/passwd", "/etc/passwd", "/..\\secret.txt", "/%00", "/.hidden",
                   "/static/", "/nothing-here", "http://127.0.0.1/../secret.txt", "/%ff%fe"]:
        assert locate(real, target) == ("missing", None), target
    assert locate(real, "/") == ("file", os.path.join(real, "index.html"))
    assert locate(real, "/post/") == ("file", os.path.join(real, "post", "index.html"))
    assert locate(real, "/post") == ("redirect", "/post/")
    assert locate(real, "/post?x=1") == ("redirect", "/post/?x=1")
    assert locate(real, "//post") == ("redirect", "/post/")  # never '//post/', another host to a browser
    assert locate(real, "/static/style.css") == ("file", os.path.join(real, "static", "style.css"))


def test_editor_noise_is_recognised():
    noise = ["4913", "5036", ".post.md.swp", ".post.md.swx", ".#post.md", "#post.md#", "post.md~",
             ".goutputstream-X1Y2", "post.md___jb_tmp___", "post.md___jb_old___", "post.md.tmp",
             ".index.html.tmp123", ".DS_Store", "post.md.kate-swp", "post.md.crswap"]
    for name in noise:
        assert is_editor_noise(name), name
    for name in ["post.md", "index.md", "table.parquet", "style.css", "post.html", "2024-01-01-x.md"]:
        assert not is_editor_noise(name), name


def test_content_types():
    assert content_type("a/t.parquet") == "application/vnd.apache.parquet"
    assert content_type("a.json") == "application/json"
    assert content_type("a.svg") == "image/svg+xml"
    assert content_type("a.wasm") == "application/wasm"
    assert content_type("feed.xml").startswith("application/xml")
    assert content_type("fig.0123456789.bin") == "application/octet-stream"
    assert content_type("a.html") == "text/html; charset=utf-8"
    assert content_type("a.JS").startswith("text/javascript")
    assert content_type("no-suffix") == "application/octet-stream"


def test_inject_goes_before_the_last_body_end():
    page = b"<html><body><p>&lt;/body&gt; in text</p></BODY></html>"
    assert inject(page, b"<script></script>") == b"<html><body><p>&lt;/body&gt; in text</p><script></script></BODY></html>"
    assert inject(b"<p>fragment", b"<s>") == b"<p>fragment<s>"


# ---------------------------------------------------------------------------------------------
# serving

def test_pages_are_served_with_the_reload_client_which_never_reaches_the_output(preview):
    status, headers, body = preview.get("/alpha/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script src="/__sitegen/reload.js"' in body
    assert body.index(b"reload.js") < body.rindex(b"</body>")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b"Alpha's first paragraph" in body or b"Alpha&#x27;s first paragraph" in body \
        or b"Alpha\xe2\x80\x99s first paragraph" in body
    # the output folder holds the page as built: no trace of the preview client
    out = preview.server.out_dir
    for page in out.rglob("*.html"):
        assert "__sitegen" not in page.read_text(encoding="utf-8"), page
    assert not (preview.root / "_site").exists(), "the preview must not write the real output folder"
    status, headers, js = preview.get("/__sitegen/reload.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"EventSource" in js
    assert not any((REPO / "sitegen" / "static").glob("reload*")), "preview code would ship with every site"


def test_a_built_site_has_no_preview_code(tmp_path):
    root = make_site(tmp_path / "site")
    Builder(root, use_cache=False).build()
    for path in (root / "_site").rglob("*"):
        if path.is_file():
            assert b"__sitegen" not in path.read_bytes(), path


def test_traversal_and_listing_attempts_get_404(preview, tmp_path):
    write(preview.root, "secret.txt", "TOP SECRET")
    out = preview.server.out_dir
    (out / "escape").symlink_to(preview.root / "secret.txt")
    for target in ["/../secret.txt", "/../../secret.txt", "/%2e%2e/secret.txt", "/%2e%2e%2fsecret.txt",
                   "/alpha/..%2f..%2fsecret.txt", "/escape", "//etc/passwd", "/etc/passwd",
                   "http://127.0.0.1/../secret.txt", "/static/", "/alpha/../../sitegen.toml"]:
        reply = preview.raw(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        assert reply.startswith(b"HTTP/1.1 404"), (target, reply[:80])
        assert b"TOP SECRET" not in reply and b"root:" not in reply, target
        assert b"Directory listing" not in reply


def test_folders_redirect_to_their_slash_and_missing_pages_get_the_404_page(preview):
    status, headers, _ = preview.get("/alpha")
    assert status == 301 and headers["Location"] == "/alpha/"
    status, headers, body = preview.get("/no-such-post/")
    assert status == 404
    assert b"reload.js" in body and b'data-status="404"' in body
    assert any("404 /no-such-post/" in line for line in preview.lines)


def test_content_types_of_served_files(preview):
    root = preview.root
    write(root, "content/bundle/index.md", POST.format(title="Bundle", date="2024-02-01", tag="x", body="Files."))
    for name, data in [("t.parquet", b"PAR1...."), ("d.json", b"{}"), ("f.svg", b"<svg/>"),
                       ("m.wasm", b"\0asm"), ("x.bin", b"\1\2"), ("n.xml", b"<a/>")]:
        (root / "content" / "bundle" / name).write_bytes(data)
    client = preview.client()
    client.until(lambda m: built(m) and "/bundle/index.html" in m["written"])
    expected = {"t.parquet": "application/vnd.apache.parquet", "d.json": "application/json",
                "f.svg": "image/svg+xml", "m.wasm": "application/wasm", "x.bin": "application/octet-stream",
                "n.xml": "application/xml; charset=utf-8"}
    for name, ctype in expected.items():
        status, headers, _ = preview.get(f"/bundle/{name}")
        assert status == 200, name
        assert headers["Content-Type"] == ctype, name
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = preview.get("/feed.xml")
    assert status == 200 and headers["Content-Type"].startswith("application/xml")


def test_head_range_and_revalidation(preview):
    write(preview.root, "content/bundle/index.md", POST.format(title="Bundle", date="2024-02-01", tag="x", body="x"))
    (preview.root / "content" / "bundle" / "blob.bin").write_bytes(bytes(range(100)))
    client = preview.client()
    client.until(lambda m: built(m) and "/bundle/blob.bin" in m["written"])
    status, headers, body = preview.get("/bundle/blob.bin", method="HEAD")
    assert status == 200 and body == b"" and headers["Content-Length"] == "100"
    status, headers, body = preview.get("/bundle/blob.bin", {"Range": "bytes=10-19"})
    assert status == 206 and body == bytes(range(10, 20))
    assert headers["Content-Range"] == "bytes 10-19/100"
    status, _, body = preview.get("/bundle/blob.bin", {"Range": "bytes=-5"})
    assert status == 206 and body == bytes(range(95, 100))
    status, _, _ = preview.get("/bundle/blob.bin", {"Range": "bytes=500-"})
    assert status == 416
    status, headers, _ = preview.get("/bundle/blob.bin")
    status, _, body = preview.get("/bundle/blob.bin", {"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""


def test_other_hosts_and_origins_are_refused(preview):
    status, _, body = preview.get("/alpha/", {"Host": "attacker.example"})
    assert status == 403 and b"Alpha" not in body
    assert preview.get("/alpha/", {"Host": "localhost:1234"})[0] == 200
    evil = Client(preview.port, origin="http://attacker.example")
    assert evil.status == 403
    evil.close()
    ok = Client(preview.port, origin=f"http://localhost:{preview.port}")
    assert ok.status == 200
    ok.close()
    assert preview.get("/alpha/", method="POST")[0] == 405


# ---------------------------------------------------------------------------------------------
# rebuilding and reloading

def test_editing_a_post_rebuilds_only_that_post_and_reloads_the_tab(preview):
    client = preview.client()
    path = preview.root / "content" / "beta.md"
    path.write_text(path.read_text().replace("Beta's first paragraph.", "Beta, edited on disk."))
    msg = client.until(built)
    assert "/beta/index.html" in msg["written"]
    assert "/alpha/index.html" not in msg["written"]
    assert msg["problems"] == []
    last = preview.server.history[-1]
    assert last["parsed"] == ["content/beta.md"]
    assert last["changed"] == [str(path)]
    status, _, body = preview.get("/beta/")
    assert b"Beta, edited on disk." in body
    # the index lists the post with its new excerpt
    assert "/index.html" in msg["written"]
    assert preview.server.wait_idle(WAIT)
    assert any("content/beta.md -> wrote /beta/" in line for line in preview.lines)


def test_a_broken_save_keeps_the_last_good_page_and_reports_every_error_until_fixed(preview):
    client = preview.client()
    path = preview.root / "content" / "alpha.md"
    good = path.read_text()
    broken = good + "\n```{chrat} data/table.csv\n:x: x\n```\n\n```{nonsense}\n```\n"
    path.write_text(broken)
    msg = client.until(failed)
    texts = [p["text"] for p in msg["problems"]]
    lines = broken.split("\n")
    line_a = lines.index("```{chrat} data/table.csv") + 1
    line_b = lines.index("```{nonsense}") + 1
    assert any(t.startswith(f"content/alpha.md:{line_a}: ") and "chrat" in t for t in texts), texts
    assert any(t.startswith(f"content/alpha.md:{line_b}: ") and "nonsense" in t for t in texts), texts
    assert preview.server.wait_idle(WAIT)  # the tab hears first, the terminal right after
    for text in texts:  # the terminal says the same
        assert any(text in line for line in preview.lines), text
    status, _, body = preview.get("/alpha/")
    assert status == 200 and b"More about alpha" in body and b"chrat" not in body
    # a tab opened now learns about the failure at once
    late = Client(preview.port)
    hello = late.recv()
    assert [p["text"] for p in hello["problems"]] == texts
    late.close()
    status, _, body = preview.get("/__sitegen/status")
    assert json.loads(body)["ok"] is False
    path.write_text(good.replace("More about alpha.", "Fixed again."))
    msg = client.until(built)
    assert msg["problems"] == []
    assert "/alpha/index.html" in msg["written"]
    assert b"Fixed again." in preview.get("/alpha/")[2]
    assert preview.server.wait_idle(WAIT)
    assert any("fixed" in line for line in preview.lines)


def test_deleting_a_post_removes_its_page(preview):
    client = preview.client()
    (preview.root / "content" / "gamma.md").unlink()
    msg = client.until(built)
    assert "/gamma/index.html" in msg["removed"]
    assert preview.get("/gamma/")[0] == 404
    assert b"/gamma/" not in preview.get("/")[2]


def test_new_and_renamed_posts(preview):
    client = preview.client()
    write(preview.root, "content/delta.md", POST.format(title="Delta", date="2024-03-01", tag="greek", body="New."))
    msg = client.until(built)
    assert "/delta/index.html" in msg["written"]
    os.rename(preview.root / "content" / "delta.md", preview.root / "content" / "epsilon.md")
    msg = client.until(built)
    assert "/epsilon/index.html" in msg["written"] and "/delta/index.html" in msg["removed"]
    assert preview.get("/epsilon/")[0] == 200 and preview.get("/delta/")[0] == 404


def test_editing_a_data_table_rebuilds_the_pages_that_use_it(preview):
    client = preview.client()
    write(preview.root, "data/table.csv", "x,y\n1,2\n2,4\n3,9\n4,16\n")
    msg = client.until(built)
    assert "/charted/index.html" in msg["written"]
    last = preview.server.history[-1]
    assert last["parsed"] == ["content/charted.md"]
    assert "/alpha/index.html" not in msg["written"]


def test_editing_a_template_rebuilds_the_pages_that_use_it(preview):
    client = preview.client()
    base = (REPO / "sitegen" / "templates" / "post.html").read_text()
    write(preview.root, "templates/post.html", base.replace("{% block main %}", "{% block main %}<p>TEMPLATE EDIT</p>", 1))
    msg = client.until(built)
    assert {"/alpha/index.html", "/beta/index.html"} <= set(msg["written"])
    assert b"TEMPLATE EDIT" in preview.get("/beta/")[2]
    assert b"TEMPLATE EDIT" not in preview.get("/tags/")[2]


def test_a_config_change_rebuilds_everything(preview):
    client = preview.client()
    write(preview.root, "sitegen.toml", 'title = "Renamed site"\n')
    msg = client.until(built)
    assert msg.get("all") or {"/index.html", "/alpha/index.html", "/tags/index.html"} <= set(msg["written"])
    assert b"Renamed site" in preview.get("/alpha/")[2]


def test_a_stylesheet_change_is_swapped_without_touching_pages(preview):
    client = preview.client()
    write(preview.root, "static/extra.css", "body { margin: 1px; }\n")
    msg = client.until(built)
    assert msg["cssOnly"] is True
    assert msg["css"] == ["/static/extra.css"]
    assert not [u for u in msg["written"] if u.endswith(".html")], msg["written"]
    assert preview.get("/static/extra.css")[2] == b"body { margin: 1px; }\n"


def test_an_editor_save_burst_is_one_rebuild(tmp_path):
    # vim's default save: probe file 4913, rename the original to a backup, write anew, drop the
    # backup; meanwhile its swap file changes and emacs-style lock files come and go.
    p = Preview(make_site(tmp_path / "site"), quiet=0.3)
    try:
        client = p.client()
        before = p.server.builds
        content = p.root / "content"
        post = content / "alpha.md"
        text = post.read_text()
        (content / "4913").write_text("")
        (content / "4913").unlink()
        (content / ".alpha.md.swp").write_bytes(b"swap")
        os.symlink("user@host.123", content / ".#alpha.md")
        os.rename(post, content / "alpha.md~")
        post.write_text(text.replace("More about alpha.", "Saved by an editor."))
        (content / "alpha.md~").unlink()
        (content / ".alpha.md.swp").write_bytes(b"swap2")
        (content / ".#alpha.md").unlink()
        tmp = content / ".goutputstream-ABC"
        tmp.write_text(text.replace("More about alpha.", "Then saved atomically."))
        os.replace(tmp, post)
        msg = client.until(built)
        assert "/alpha/index.html" in msg["written"]
        p.settle(post)
        assert p.server.builds == before + 1, p.server.history[-3:]
        assert p.server.history[-1]["changed"] == [str(post)]
        assert b"Then saved atomically." in p.get("/alpha/")[2]
    finally:
        p.stop()


def test_changes_during_a_build_wait_for_one_more_build(preview):
    server = preview.server
    builder = server.builder
    original = builder.build
    running = threading.Event()
    release = threading.Event()
    state = {"now": 0, "most": 0, "calls": 0}
    lock = threading.Lock()

    def slow_build(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["calls"] += 1
            state["most"] = max(state["most"], state["now"])
            first = state["calls"] == 1
        try:
            if first:
                running.set()
                release.wait(WAIT)
            return original(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    builder.build = slow_build
    client = preview.client()
    alpha, beta, gamma = (preview.root / "content" / f"{n}.md" for n in ("alpha", "beta", "gamma"))
    alpha.write_text(alpha.read_text().replace("More about alpha.", "Edit one."))
    assert running.wait(WAIT)
    beta.write_text(beta.read_text().replace("Beta's first paragraph.", "Edit two."))
    gamma.write_text(gamma.read_text().replace("Gamma's first paragraph.", "Edit three."))
    preview.seen(beta)  # both edits reached the rebuilder while the first build still runs
    release.set()
    assert server.wait_idle(WAIT)
    first = client.until(built)
    second = client.until(built)
    assert state["most"] == 1, "two builds ran at once"
    assert state["calls"] == 2
    assert "/alpha/index.html" in first["written"]
    assert second["build"] >= first["build"]
    assert server.history[-2]["changed"] == [str(alpha)]
    assert server.history[-1]["changed"] == sorted([str(beta), str(gamma)])
    for name, text in (("alpha", b"Edit one."), ("beta", b"Edit two."), ("gamma", b"Edit three.")):
        assert text in preview.get(f"/{name}/")[2]


def test_many_clients_all_hear_and_vanishing_ones_leak_nothing(preview):
    baseline = threading.active_count()
    clients = [preview.client() for _ in range(30)]
    assert len(preview.server.hub) == 30
    path = preview.root / "content" / "beta.md"
    path.write_text(path.read_text() + "\nOne more line.\n")
    for c in clients:
        assert "/beta/index.html" in c.until(built)["written"]
    # half leave abruptly (a reset), half hang up properly
    for i, c in enumerate(clients):
        if i % 2:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        else:
            c.sock.shutdown(socket.SHUT_WR)
            c.close()
    # connections that hang up halfway through a request, or never finish it
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", preview.port))
        s.sendall(b"GET /alpha/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    with_replies = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", preview.port))
        s.sendall(b"GET /static/extra.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with_replies.append(s)
    for s in with_replies:
        s.close()
    deadline = time.monotonic() + WAIT
    httpd = preview.server.httpd
    while time.monotonic() < deadline and (len(preview.server.hub) or httpd.open_connections
                                           or threading.active_count() > baseline):
        time.sleep(0.02)
    assert len(preview.server.hub) == 0
    assert httpd.open_connections == 0
    assert threading.active_count() <= baseline
    # and the server still answers
    assert preview.get("/alpha/")[0] == 200


def test_the_reload_stream_keeps_alive_and_notices_a_closed_tab(preview, monkeypatch):
    monkeypatch.setattr(reload, "PING_EVERY", 0.05)
    c = preview.client()
    deadline = time.monotonic() + WAIT
    while c.comments < 2 and time.monotonic() < deadline:  # keep-alive lines arrive while nothing happens
        with pytest.raises(TimeoutError):
            c.recv(0.2)
    assert c.comments >= 2
    assert len(preview.server.hub) == 1
    c.close()
    while len(preview.server.hub) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(preview.server.hub) == 0


def test_the_reload_stream_refuses_other_sites_and_too_many_streams(preview):
    assert Client(preview.port, origin="http://attacker.example").status == 403
    assert Client(preview.port, origin="null").status == 403
    preview.server.hub.limit = 2
    kept = [preview.client(), preview.client()]
    extra = Client(preview.port)
    assert extra.status == 503 and extra.headers.get("retry-after")
    for c in kept + [extra]:
        c.close()


def test_stop_closes_tabs_and_frees_the_port(tmp_path):
    p = Preview(make_site(tmp_path / "site"))
    client = p.client()
    port = p.port
    p.stop()
    with pytest.raises(ConnectionError):
        client.recv(WAIT)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # free again


# ---------------------------------------------------------------------------------------------
# ports, hosts and the command line

def test_port_in_use_moves_on_or_fails_when_given(tmp_path):
    root = make_site(tmp_path / "site")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        lines = []
        server = PreviewServer(root, port=port, log=lines.append)
        try:
            got = server.bind()
            assert got != port
            assert any(f"port {port} is in use" in line and str(got) in line for line in lines)
        finally:
            server.httpd.server_close()
        with pytest.raises(PortInUse, match=f"port {port} is already in use"):
            PreviewServer(root, port=port, port_given=True, log=lines.append).bind()
        result = subprocess.run([sys.executable, "-m", "sitegen", "serve", str(root), "--port", str(port)],
                                capture_output=True, text=True, timeout=WAIT, cwd=REPO)
        assert result.returncode == 1
        assert f"port {port} is already in use" in result.stderr
        assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cli(root: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = str(_free_port())
    proc = subprocess.Popen([sys.executable, "-u", "-m", "sitegen", "serve", str(root), "--port", port, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + WAIT * 2
    out = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if "serving http://" in line:
            url = line.split("serving ", 1)[1].split()[0]
            return proc, url
    proc.kill()
    raise AssertionError("the server never said where it serves:\n" + "".join(out) + proc.stderr.read())


def test_ctrl_c_stops_the_server_cleanly(tmp_path):
    root = make_site(tmp_path / "site")
    proc, url = _start_cli(root)
    try:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert url.startswith("http://127.0.0.1:")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        conn.request("GET", "/alpha/")
        assert conn.getresponse().status == 200
        conn.close()
        client = Client(port)
        assert client.status == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "stopped" in out
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_other_hosts_bring_a_warning(tmp_path):
    root = make_site(tmp_path / "site")
    proc, url = _start_cli(root, "--host", "0.0.0.0")
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "warning: listening on 0.0.0.0" in err
    assert "drafts" in err
    assert proc.returncode == 0


def test_drafts_are_in_the_preview(preview):
    client = preview.client()
    write(preview.root, "content/secret-draft.md", "---\ntitle: A draft\ndraft: true\n---\n\nNot yet.\n")
    msg = client.until(built)
    assert "/secret-draft/index.html" in msg["written"]
    assert preview.get("/secret-draft/")[0] == 200


def test_a_broken_first_build_still_serves_and_recovers(tmp_path):
    root = make_site(tmp_path / "site")
    bad = write(root, "content/bad.md", "---\ntitle: Bad\ndate: 2024-05-01\n---\n\n```{nonsense}\n```\n")
    p = Preview(root)
    try:
        status, _, body = p.get("/")
        assert status == 404 and b"reload.js" in body  # the overlay can tell what went wrong
        c = Client(p.port)
        hello = c.recv()
        assert any(t["text"].startswith("content/bad.md:6:") for t in hello["problems"])
        bad.write_text("---\ntitle: Bad\ndate: 2024-05-01\n---\n\nGood now.\n")
        msg = c.until(built)
        assert "/index.html" in msg["written"] and msg["problems"] == []
        assert p.get("/bad/")[0] == 200
        c.close()
    finally:
        p.stop()


def test_renaming_a_post_updates_its_neighbours_and_the_lists(preview):
    client = preview.client()
    # Beta sits between Alpha (older) and Gamma (newer); their pages link to it by title.
    assert b"Beta" in preview.get("/alpha/")[2] and b"Beta" in preview.get("/gamma/")[2]
    path = preview.root / "content" / "beta.md"
    path.write_text(path.read_text().replace("title: Beta", "title: Bravo"))
    msg = client.until(built)
    assert {"/beta/index.html", "/alpha/index.html", "/gamma/index.html", "/index.html"} <= set(msg["written"])
    assert preview.server.history[-1]["parsed"] == ["content/beta.md"]
    for page in ("/alpha/", "/gamma/", "/", "/tags/greek/", "/beta/"):
        body = preview.get(page)[2]
        assert b"Bravo" in body, page
        assert re.search(rb">[^<]*\bBeta\b[^<]*</a>", body) is None, page  # no link says Beta any more


def test_pages_stay_right_across_failed_builds(preview):
    client = preview.client()
    alpha, beta = preview.root / "content" / "alpha.md", preview.root / "content" / "beta.md"
    good_alpha = alpha.read_text()
    alpha.write_text(good_alpha + "\n```{nonsense}\n```\n")
    client.until(failed)
    beta.write_text(beta.read_text().replace("Beta's first paragraph.", "Beta changed while alpha was broken."))
    client.until(failed)  # alpha is still broken: nothing is written
    assert b"Beta changed" not in preview.get("/beta/")[2]
    alpha.write_text(good_alpha.replace("More about alpha.", "Alpha repaired."))
    msg = client.until(built)
    assert {"/alpha/index.html", "/beta/index.html"} <= set(msg["written"])
    assert b"Alpha repaired." in preview.get("/alpha/")[2]
    assert b"Beta changed while alpha was broken." in preview.get("/beta/")[2]
    # and a later, unrelated edit carries both over untouched
    gamma = preview.root / "content" / "gamma.md"
    gamma.write_text(gamma.read_text() + "\nLater.\n")
    msg = client.until(built)
    assert "/alpha/index.html" not in msg["written"] and "/beta/index.html" not in msg["written"]
    assert b"Alpha repaired." in preview.get("/alpha/")[2]


def test_policy_violations_reported_by_the_browser_reach_the_terminal(preview):
    report = {"csp-report": {"document-uri": f"http://127.0.0.1:{preview.port}/alpha/",
                             "effective-directive": "script-src-elem", "blocked-uri": "inline",
                             "source-file": f"http://127.0.0.1:{preview.port}/alpha/", "line-number": 12}}
    conn = http.client.HTTPConnection("127.0.0.1", preview.port, timeout=WAIT)
    for _ in range(2):  # the same report twice is said once
        conn.request("POST", "/__sitegen/csp", body=json.dumps(report),
                     headers={"Content-Type": "application/csp-report"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 204
    conn.close()
    said = [line for line in preview.lines if "Content-Security-Policy" in line]
    assert len(said) == 1
    assert "/alpha/" in said[0] and "inline script" in said[0] and ":12" in said[0]
    assert "report-uri /__sitegen/csp" in preview.get("/alpha/")[1]["Content-Security-Policy"]


def test_lost_file_events_lead_to_a_full_check(preview):
    import logging

    client = preview.client()
    beta = preview.root / "content" / "beta.md"
    # A change whose events are lost (as when the kernel's event queue overflows) ...
    server = preview.server
    server.relevant = lambda path: False
    beta.write_text(beta.read_text().replace("Beta's first paragraph.", "Changed behind the watcher's back."))
    preview.settle(beta)
    del server.relevant
    assert b"Changed behind the watcher" not in preview.get("/beta/")[2]
    # ... is found once watchdog says it lost events.
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; filesystem events were lost")
    msg = client.until(lambda m: built(m) and "/beta/index.html" in m["written"])
    assert preview.server.history[-1]["changed"] == []
    assert b"Changed behind the watcher" in preview.get("/beta/")[2]
    assert any("checking every file" in line for line in preview.lines)


def test_the_parse_cache_is_written_when_idle(preview):
    pickle = preview.root / ".sitegen-cache" / "build.sqlite"
    before = pickle.stat().st_mtime_ns if pickle.exists() else 0
    client = preview.client()
    alpha = preview.root / "content" / "alpha.md"
    alpha.write_text(alpha.read_text() + "\nCached later.\n")
    client.until(built)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and (not pickle.exists() or pickle.stat().st_mtime_ns == before):
        time.sleep(0.05)
    assert pickle.exists() and pickle.stat().st_mtime_ns != before


def test_ctrl_c_twice_still_exits_without_a_traceback(tmp_path):
    root = make_site(tmp_path / "site")
    proc, _ = _start_cli(root)
    try:
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 130)
    assert "Traceback" not in err and "Traceback" not in out


def test_idle_connections_held_open_give_way_to_a_real_request(preview):
    # 300 connections that say nothing (or half a request line), more than the server's limit: each
    # newcomer closes the one idle the longest, so the next real request is answered at once.
    held = []
    try:
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", preview.port), timeout=WAIT)
            if i % 3 == 0:
                s.sendall(b"GET /alpha/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            held.append(s)
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", preview.port, timeout=5)  # not the 10 s it took
        conn.request("GET", "/alpha/")
        assert conn.getresponse().status == 200
        conn.close()
        assert time.monotonic() - started < 5
        assert preview.server.httpd.open_connections <= preview.server.httpd.limit + 1
    finally:
        for s in held:
            s.close()


def test_escape_bytes_from_a_request_never_reach_the_terminal(preview):
    reply = preview.raw(b"GET /\x1b]0;owned\x07/\x1b[2J\x9b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 404")
    report = json.dumps({"csp-report": {"document-uri": "http://127.0.0.1/\x1b[31mred",
                                        "blocked-uri": "inline\x1b[2J", "effective-directive": "script-src"}})
    conn = http.client.HTTPConnection("127.0.0.1", preview.port, timeout=WAIT)
    conn.request("POST", "/__sitegen/csp", body=report, headers={"Content-Type": "application/csp-report"})
    assert conn.getresponse().status == 204
    conn.close()
    logged = "\n".join(preview.lines)
    assert "404 /\\x1b]0;owned\\x07/\\x1b[2J" in logged
    assert "\\x1b[31mred" in logged and "inline\\x1b[2J" in logged
    assert not any(c in logged for c in "\x1b\x07\x9b")
