"""``sitegen serve``: build with drafts, serve the result, rebuild on every save, update the open tabs.

One process, a few threads, each with one job, each in its own module:

* ``watch``   -- the watcher (watchdog) turns file events under ``content/``, ``data/``,
  ``templates/``, ``static/`` and the config into changed paths, minus editor noise and the
  build's own writes;
* ``rebuild`` -- the rebuilder waits until a burst of events has gone quiet, then runs one
  incremental build; two builds never run at once;
* ``http``    -- the HTTP server serves the output folder and nothing outside it, and adds the
  reload client to every HTML response at request time (it is never written into the output);
* ``reload``  -- the reload channel: one stream of server-sent events per browser, telling it what
  the last build changed or what went wrong (the client is ``static_preview/reload.js``);
* ``runs``    -- the live-run monitor notices an experiment that stopped training;
* ``preview`` -- :class:`PreviewServer` ties them together; ``command`` is the CLI entry point;
  ``files`` maps requests to files; ``terminal`` formats what the terminal is told.

The preview builds into ``.sitegen-cache/preview/``, never into the site's real output folder,
so ``sitegen build`` output is not mixed with drafts; keeping it there makes a restart cheap.
"""
from __future__ import annotations

from sitegen.serve.command import serve
from sitegen.serve.files import content_type, inject, is_live_path, locate, request_path
from sitegen.serve.preview import PortInUse, PreviewServer
from sitegen.serve.rebuild import Rebuilder
from sitegen.serve.reload import Hub
from sitegen.serve.watch import is_editor_noise

__all__ = ["serve", "PreviewServer", "PortInUse", "Rebuilder", "Hub", "content_type", "inject",
           "is_editor_noise", "is_live_path", "locate", "request_path"]
