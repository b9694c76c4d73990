"""The ``sitegen`` command. Thin: parses arguments and calls the module that does the work."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def _print_problems(problems, stream=None) -> None:
    for p in problems:
        print(str(p), file=stream or sys.stderr)


def cmd_build(args) -> int:
    from sitegen.build import Builder
    from sitegen.errors import BuildError

    builder = Builder(args.site, out=args.out, drafts=args.drafts, use_cache=not args.no_cache,
                      workers=args.jobs)
    builder.keep_memo = False  # one build per process: nothing to carry over in memory
    try:
        result = builder.build()
    except BuildError as exc:
        _quit_collecting()
        _print_problems(exc.problems)
        errors = sum(1 for p in exc.problems if p.level == "error")
        print(f"build failed: {errors} error(s); the previous output was left as it was", file=sys.stderr)
        return 1
    _quit_collecting()
    _print_problems(result.warnings)
    rel = result.out_dir
    try:
        rel = result.out_dir.relative_to(Path.cwd())
    except ValueError:
        pass
    print(f"built {result.pages} files into {rel}/ in {result.seconds:.2f} s "
          f"({len(result.parsed)} post(s) rendered, {len(result.written)} file(s) written"
          f"{', ' + str(len(result.warnings)) + ' warning(s)' if result.warnings else ''})")
    return 0


def _quit_collecting() -> None:
    """The process ends after its one build: the cyclic collector's pass over every object at exit
    (the build cache's half a million; 0.04 s of a one-post rebuild) would find nothing to free."""
    import gc

    gc.freeze()


def cmd_serve(args) -> int:
    from sitegen.serve import serve

    return serve(args.site, host=args.host, port=args.port, port_given=args.port_given, open_browser=args.open)


def cmd_new(args) -> int:
    from sitegen.content import slugify

    root = Path(args.site)
    slug = slugify(args.title)
    content = root / "content"
    content.mkdir(parents=True, exist_ok=True)
    path = content / f"{slug}.md"
    if path.exists() or (content / slug / "index.md").exists():
        print(f"{path}: a post with this slug exists already; choose another title", file=sys.stderr)
        return 1
    today = dt.date.today().isoformat()
    title = args.title.replace('"', '\\"')
    path.write_text(
        f'---\ntitle: "{title}"\ndate: {today}\nsummary: ""\ntags: []\ndraft: true\n---\n\n'
        "Write the first paragraph here; it becomes the excerpt unless you set `summary`.\n",
        encoding="utf-8")
    print(f"wrote {path} (a draft: set 'draft: false' to publish it)")
    return 0


def cmd_init(args) -> int:
    from sitegen.scaffold import init_site

    return init_site(Path(args.dir), with_templates=args.templates)


def cmd_import(args) -> int:
    from sitegen.jekyll_import import run

    return run(args.path, args.site)


def cmd_data(args) -> int:
    from sitegen import provenance

    root = Path(args.site)
    if args.action == "import":
        return cmd_data_import(root, args)
    if args.action == "run":
        if not args.name:
            print("sitegen data run NAME: name the experiment to run (see `sitegen data`)", file=sys.stderr)
            return 2
        return provenance.run_experiment(root, args.name, preset=args.preset, device=args.device,
                                         extra_args=["--live"] if args.live else [])
    tables = provenance.list_tables(root)
    if not tables:
        print("no tables in data/")
        return 0
    for t in tables:
        print(provenance.describe(t))
    return 0


def cmd_data_import(root: Path, args) -> int:
    from sitegen.errors import SiteError
    from sitegen.logs.importer import import_log

    if not args.name or not args.table:
        print("sitegen data import SOURCE NAME: name the log (a folder or file) and the table to write, "
              "e.g. `sitegen data import runs/ my_runs`", file=sys.stderr)
        return 2
    try:
        table = import_log(root, args.name, args.table, reader=args.reader,
                           experiment=args.experiment, run=args.run)
    except SiteError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    import pyarrow.parquet as pq

    meta = pq.read_metadata(table)
    print(f"wrote {table} ({meta.num_rows:,} rows) and {table.with_name(table.stem + '.provenance.json').name}")
    return 0


def parser() -> argparse.ArgumentParser:
    """Every command and option (the README's command table is checked against it)."""
    parser = argparse.ArgumentParser(prog="sitegen", description="Static sites for model-visualization essays.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="write the site (default into _site/)")
    p.add_argument("site", nargs="?", default=".", help="the site's folder (default: here)")
    p.add_argument("--out", help="output folder (default: the config's 'output', _site)")
    p.add_argument("--drafts", action="store_true", help="include drafts, marked as such")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not write .sitegen-cache/")
    p.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("serve", help="preview with drafts, live reload on every save")
    p.add_argument("site", nargs="?", default=".")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--open", action="store_true", help="open the browser")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("new", help="start a post: writes content/<slug>.md")
    p.add_argument("title")
    p.add_argument("--site", default=".")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("init", help="scaffold a new site")
    p.add_argument("dir")
    p.add_argument("--templates", action="store_true", help="copy the default templates to override them")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("import", help="bring a Jekyll site's posts, files and settings over")
    p.add_argument("kind", choices=["jekyll"], help="what kind of site PATH is")
    p.add_argument("path", help="the Jekyll site's folder (with _posts/ and _config.yml)")
    p.add_argument("site", nargs="?", default=".", help="the sitegen site to write (default: here)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("data", help="list traced tables and their provenance, regenerate one, or import a log")
    p.add_argument("action", nargs="?", choices=["list", "run", "import"], default="list")
    p.add_argument("name", nargs="?", help="run: the experiment; import: the log folder or file (SOURCE)")
    p.add_argument("table", nargs="?", metavar="NAME", help="import: the table to write, data/NAME.parquet")
    p.add_argument("--reader", choices=["tensorboard", "lightning", "hf-trainer", "mlflow", "jsonl"],
                   help="import: which reader (default: found from the files)")
    p.add_argument("--experiment", help="import: the experiment label, or a pattern over the folders below "
                                        "SOURCE ({0} the first, {-1} the last, {path} all)")
    p.add_argument("--run", help="import: the run label, or a pattern as for --experiment")
    p.add_argument("--preset", default="small", choices=["tiny", "small", "full"])
    p.add_argument("--device", default="auto")
    p.add_argument("--live", action="store_true",
                   help="with run: stream the traced tables while training, for a running `sitegen serve`")
    p.add_argument("--site", default=".")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":
        args.port_given = args.port is not None
        args.port = 8000 if args.port is None else args.port  # --port 0 asks the system for a free port
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug of ours: one line that says so, the traceback on request
        import os

        if os.environ.get("SITEGEN_DEBUG"):
            raise
        detail = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(f"sitegen: internal error: {type(exc).__name__}: {detail} (please report it; "
              "SITEGEN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
