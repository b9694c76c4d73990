"""``sitegen serve``: the command. Checks the folder, takes the port, starts the preview, stops it
cleanly on Ctrl-C or SIGTERM (a second Ctrl-C while it stops ends the process at once)."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from sitegen.config import CONFIG_NAME
from sitegen.serve.preview import PortInUse, PreviewServer
from sitegen.serve.watch import WATCHED_DIRS


def serve(site: str | Path = ".", host: str = "127.0.0.1", port: int = 8000, port_given: bool = False,
          open_browser: bool = False) -> int:
    """``sitegen serve``: returns the exit code."""
    root = Path(site)
    if not root.is_dir():
        print(f"{site}: no such folder; give the folder of a site (one with content/ in it)", file=sys.stderr)
        return 2
    if not (root / "content").is_dir() and not (root / CONFIG_NAME).is_file():
        print(f"{site}: no content/ folder or {CONFIG_NAME} here; is this a site? "
              "(`sitegen init DIR` starts one)", file=sys.stderr)
    preview = PreviewServer(root, host=host, port=port, port_given=port_given)
    try:
        preview.bind()
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not preview.loopback:
        print(f"warning: listening on {host}: anyone who can reach this machine can read the preview, "
              "drafts included; use the default 127.0.0.1 unless you mean that", file=sys.stderr)
    _terminate_as_interrupt()
    try:
        preview.say("building the preview (drafts included)...")
        preview.start()
        watched = [f"{n}/" for n in WATCHED_DIRS if (preview.root / n).is_dir()] + [CONFIG_NAME]
        preview.say(f"serving {preview.url}  (watching {', '.join(watched)}; Ctrl-C stops)")
        if open_browser:
            import webbrowser

            threading.Thread(target=webbrowser.open, args=(preview.url,), daemon=True).start()
        _stop_on_signal(preview)
        preview.wait()
    except KeyboardInterrupt:
        pass
    finally:
        try:
            preview.stop()
        except KeyboardInterrupt:
            pass
        preview.say("stopped")
    return 0


def _stop_on_signal(preview: PreviewServer) -> None:
    """While serving, Ctrl-C (or SIGTERM) asks the preview to stop rather than raising wherever
    the main thread happens to be; a second one, while it stops, ends the process at once."""
    import signal

    def request_stop(signum, frame):
        if preview.stop_requested:
            os._exit(130)
        preview.stop_requested = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, request_stop)
        except (ValueError, OSError):
            pass


def _terminate_as_interrupt() -> None:
    """`kill` (SIGTERM) stops the preview as cleanly as Ctrl-C does."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError):
        pass
