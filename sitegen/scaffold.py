"""``sitegen init DIR``: a new site that builds and deploys as it is."""
from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

from sitegen.stages import PACKAGE_DIR

CONFIG = '''# Site settings. Every key is optional.
title = "{title}"
description = "Essays that show what models learn."
base_url = "https://example.netlify.app/"   # used for canonical links, the feed and the sitemap
author = ""
# output = "_site"
# posts_per_page = 20
'''

FIRST_POST = '''---
title: "Hello, sitegen"
date: {today}
summary: "The first post of this site."
tags: [meta]
---

This is the first post. Edit `content/hello.md`, run `sitegen serve`, and watch the page change as you save.

Inline math like $e^{{i\\pi}} + 1 = 0$ is rendered at build time.

```{{note}}
Put traced data in `data/` and show it with the `{{expression}}` and `{{chart}}` directives.
```
'''

REQUIREMENTS = '''# What Netlify installs to build the site. Point this at the sitegen you use, e.g.
# sitegen @ git+https://example.org/you/sitegen.git
sitegen
'''

#: how Netlify and GitHub Actions build the site: a virtual environment, because build images
#: refuse system-wide pip installs
BUILD_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt && .venv/bin/sitegen build"

NETLIFY = '''# A virtual environment, because build images refuse system-wide pip installs.
[build]
  command = "BUILD_COMMAND"
  publish = "_site"

[build.environment]
  PYTHON_VERSION = "3.11"

[[headers]]
  for = "/static/*"
  [headers.values]
    Cache-Control = "public, max-age=31536000, immutable"

[[headers]]
  for = "/*"
  [headers.values]
    Content-Security-Policy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    X-Content-Type-Options = "nosniff"
    Referrer-Policy = "strict-origin-when-cross-origin"
    X-Frame-Options = "DENY"
    Permissions-Policy = "camera=(), microphone=(), geolocation=()"

[[redirects]]
  from = "/*"
  to = "/404.html"
  status = 404
'''.replace("BUILD_COMMAND", BUILD_COMMAND)

#: GitHub Pages: build with the same command as Netlify, publish _site/ with the official actions.
#: In the repository's Settings > Pages, choose "GitHub Actions" as the source.
PAGES_WORKFLOW = '''# Builds the site and publishes it on GitHub Pages on every push to the default branch.
# One-time setup: the repository's Settings > Pages > Source: "GitHub Actions".
name: Deploy to GitHub Pages

on:
  push:
    branches: [main, master]
  workflow_dispatch:

permissions:
  contents: read
  pages: write
  id-token: write

concurrency:
  group: pages
  cancel-in-progress: false

jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Build the site
        run: BUILD_COMMAND
      - uses: actions/configure-pages@v5
      - uses: actions/upload-pages-artifact@v3
        with:
          path: _site

  deploy:
    needs: build
    runs-on: ubuntu-latest
    environment:
      name: github-pages
      url: ${{ steps.deployment.outputs.page_url }}
    steps:
      - id: deployment
        uses: actions/deploy-pages@v4
'''.replace("BUILD_COMMAND", BUILD_COMMAND)
PAGES_WORKFLOW_PATH = ".github/workflows/pages.yml"
GITIGNORE = "_site/\n._site.sitegen-*/\n.sitegen-cache/\n.venv/\ndata/*.parts/\n"


def write_deploy_files(target: Path, overwrite: bool = True) -> list[str]:
    """netlify.toml, requirements.txt, the GitHub Pages workflow and .gitignore; returns those written
    (an existing file is kept unless ``overwrite``)."""
    written = []
    for rel, text in (("netlify.toml", NETLIFY), ("requirements.txt", REQUIREMENTS),
                      (PAGES_WORKFLOW_PATH, PAGES_WORKFLOW), (".gitignore", GITIGNORE)):
        path = target / rel
        if path.exists() and not overwrite:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(rel)
    return written


def init_site(target: Path, with_templates: bool = False) -> int:
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        print(f"{target}: the folder is not empty; choose a new folder for the site", file=sys.stderr)
        return 1
    (target / "content").mkdir(parents=True, exist_ok=True)
    (target / "data").mkdir(exist_ok=True)
    (target / "sitegen.toml").write_text(CONFIG.format(title=target.resolve().name.replace('"', "")))
    (target / "content" / "hello.md").write_text(FIRST_POST.format(today=dt.date.today().isoformat()))
    write_deploy_files(target)
    if with_templates:
        shutil.copytree(PACKAGE_DIR / "templates", target / "templates")
    print(f"created a site in {target}/: run `sitegen serve {target}` to preview it, `sitegen build {target}` to build it")
    print(f"to publish it: netlify.toml (Netlify) or {PAGES_WORKFLOW_PATH} (GitHub Pages: Settings > Pages > "
          "Source: GitHub Actions)")
    return 0
