"""The build cache on disk: ``.sitegen-cache/build.sqlite``.

What a build keeps for the next one is a dict: three big maps (``posts``: each source file's loaded
post, ``parsed``: each post's parse, ``pages``: each output file's key and links) and a few small
values (the code version, the output folder, the last build's id, the spare tree's record).

It lives in SQLite, the standard library's keyed store, rather than one pickle: a one-post rebuild of
a 4,000-post site changed a few entries, yet wrote the whole 20 MB pickle again. Here each big map is
cut into :data:`SHARDS` groups by a stable hash of the key, each group one pickled row, and a save
rewrites only the groups in which an entry changed, all in one transaction: a build killed while
saving leaves the previous cache as it was (SQLite rolls the half-written transaction back), and a
damaged or unreadable file costs one full build, never a wrong site: any error while loading, or a
group whose CRC-32 is not the one saved with it (a flipped byte in a page's HTML would unpickle
without complaint), gives no cache. If another process (a ``sitegen serve`` beside a ``sitegen build``) saved since this one
loaded, the whole cache is written again, so the file always holds one build's cache, never a mix.
"""
from __future__ import annotations

import copyreg
import io
import os
import pickle
import secrets
import sqlite3
import zlib
from pathlib import Path, PurePath

#: the big maps, saved group by group
KINDS = ("posts", "parsed", "pages", "post_keys", "summary_keys")
#: groups per map: a one-post rebuild rewrites a few groups of each map (about 1/64 of the cache)
SHARDS = 64

_SCHEMA = ("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL)",
           "CREATE TABLE IF NOT EXISTS shards (kind TEXT NOT NULL, shard INTEGER NOT NULL, "
           "data BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (kind, shard))",
           "CREATE TABLE IF NOT EXISTS fragments (post TEXT PRIMARY KEY, version TEXT NOT NULL, "
           "data BLOB NOT NULL, crc INTEGER NOT NULL)")
_MISSING = object()


def _dumps(value) -> bytes:
    """``pickle.dumps``, but a path is pickled as its folder and its name, the folder once per group:
    unpickled as ``folder / name``, 4,000 post paths cost a quarter of what PosixPath(*parts) each did."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    folders: dict[str, PurePath] = {}

    def reduce_path(path):
        folder, name = os.path.split(str(path))
        if not folder or not name:
            return path.__reduce__()
        parent = folders.get(folder)
        if parent is None:  # one object per folder, so the pickle writes it once and refers to it
            parent = folders[folder] = type(path)(folder)
        return _joined, (parent, name)

    from sitegen.stages import Parsed, packed

    pickler.dispatch_table = {**copyreg.dispatch_table, type(Path()): reduce_path, Parsed: packed}
    pickler.dump(value)
    return buffer.getvalue()


def _joined(folder: PurePath, name: str) -> PurePath:
    return folder / name


def _shared(value, memo: dict):
    """``value`` with each of its equal strings, tuples and frozensets made one object, so that the
    pickle holds it once and refers to it: most of a page's links are every page's (the header's,
    the stylesheets'), and most of its ids too; unpickled, 4,000 pages' entries were a quarter of a
    million objects. Lists stay lists of their own (shared items only)."""
    kind = type(value)
    if kind is dict:
        return {key: _shared(item, memo) for key, item in value.items()}
    if kind is list:
        return [_shared(item, memo) for item in value]
    if kind is tuple:
        value = tuple(_shared(item, memo) for item in value)
    elif kind is not str and kind is not frozenset:
        return value
    try:
        return memo.setdefault(value, value)
    except TypeError:  # a tuple holding a list
        return value


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % SHARDS


class CacheFile:
    """One site's build cache file. Keep the object for the Builder's life: it remembers what the
    file holds, to save only what changed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._saved: dict[str, dict] | None = None  # the maps as the file holds them (None: unknown)
        self._generation: str | None = None         # the file's save that _saved describes

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        # A process killed mid-save loses nothing whatever this says; NORMAL syncs the journal and the
        # file at the moments that keep a power cut from leaving half of two saves (FULL: one more).
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def out_dir(self) -> str | None:
        """The output folder the cache was written for, whatever its version; None if unreadable."""
        if not self.path.exists():
            return None
        try:
            db = self._connect()
            try:
                row = db.execute("SELECT value, crc FROM meta WHERE name = 'out_dir'").fetchone()
            finally:
                db.close()
            return pickle.loads(row[0]) if row and zlib.crc32(row[0]) == row[1] else None
        except Exception:
            return None

    def load(self, version: str) -> tuple[dict | None, str | None]:
        """The cache if the file holds one of ``version`` (else None), and the output folder it
        names (whatever its version)."""
        self._saved = self._generation = None
        if not self.path.exists():
            return None, None
        out_dir = None
        try:
            db = self._connect()
            try:
                db.execute("BEGIN")  # one consistent read, even if another process saves meanwhile
                rows = db.execute("SELECT name, value, crc FROM meta").fetchall()
                if any(zlib.crc32(value) != crc for _, value, crc in rows):
                    return None, None
                meta = {name: pickle.loads(value) for name, value, _ in rows}
                out_dir = meta.get("out_dir")
                if meta.get("version") != version:
                    return None, out_dir
                cache = {kind: {} for kind in KINDS}
                # (the Builder keeps the collector off while it loads: half a million objects are made)
                for kind, data, crc in db.execute("SELECT kind, data, crc FROM shards"):
                    if zlib.crc32(data) != crc:
                        return None, out_dir
                    cache[kind].update(pickle.loads(data))
                db.execute("COMMIT")
            finally:
                db.close()
        except Exception:
            return None, out_dir  # a damaged cache only costs a full build
        generation = meta.pop("generation", None)
        cache.update(meta)
        self._saved = {kind: dict(cache[kind]) for kind in KINDS}
        self._generation = generation
        return cache, out_dir

    def fragments(self, posts: list[str], version: str) -> dict[str, dict]:
        """The code blocks' and formulas' HTML of each post's last parse (see sitegen/markdown.py):
        not loaded with the cache, read only for the posts parsed again. A post without a row, a row
        of another code version or a damaged one gives nothing to reuse, never an error."""
        found: dict[str, dict] = {}
        if not posts or not self.path.exists():
            return found
        try:
            db = self._connect()
            try:
                for k in range(0, len(posts), 500):
                    batch = posts[k:k + 500]
                    marks = ", ".join("?" * len(batch))
                    for post, kept, data, crc in db.execute(
                            f"SELECT post, version, data, crc FROM fragments WHERE post IN ({marks})", batch):
                        if kept == version and zlib.crc32(data) == crc:
                            try:
                                found[post] = pickle.loads(data)
                            except Exception:
                                pass
            finally:
                db.close()
        except Exception:
            return {}  # (no such table: a cache of an earlier version)
        return found

    def save(self, cache: dict, fragments: dict | None = None) -> None:
        """Write ``cache``: the groups whose entries changed since the last load or save, or all of
        them when the file is not the one this object knows; and ``fragments``, post -> its parse's
        code and math HTML (None or empty: it has none now)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            db = None
            try:
                db = self._connect()
                self._save(db, cache, fragments or {})
                return
            except sqlite3.DatabaseError as exc:
                busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                if attempt == 2 or busy:
                    raise OSError(f"cannot write the build cache {self.path}: {exc}") from None
            finally:
                if db is not None:
                    db.close()
            # Not a cache file we can write into (damaged, another format): a new one.
            for suffix in ("", "-journal", "-wal", "-shm"):
                try:
                    os.unlink(f"{self.path}{suffix}")
                except FileNotFoundError:
                    pass
            self._saved = None

    def _save(self, db: sqlite3.Connection, cache: dict, fragments: dict) -> None:
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()
            saved = self._saved
            if saved is None or row is None or pickle.loads(row[0]) != self._generation:
                db.execute("DELETE FROM shards")
                # (a post's fragments are good while their version is: keyed by what they were made of)
                db.execute("DELETE FROM fragments WHERE version != ?", (cache.get("version", ""),))
                saved = {}
            for kind in KINDS:
                now, before = cache.get(kind, {}), saved.get(kind)
                if before is None:
                    dirty = {shard_of(key) for key in now}
                else:
                    dirty = {shard_of(key) for key, value in now.items() if before.get(key, _MISSING) != value}
                    dirty.update(shard_of(key) for key in before if key not in now)
                if not dirty:
                    continue
                groups: dict[int, dict] = {s: {} for s in dirty}
                for key, value in now.items():
                    group = groups.get(shard_of(key))
                    if group is not None:
                        group[key] = value
                for s, group in groups.items():
                    if group:
                        data = _dumps(_shared(group, {}) if kind == "pages" else group)
                        db.execute("INSERT OR REPLACE INTO shards VALUES (?, ?, ?, ?)", (kind, s, data, zlib.crc32(data)))
                    else:
                        db.execute("DELETE FROM shards WHERE kind = ? AND shard = ?", (kind, s))
            for post, made in fragments.items():
                if made:
                    data = pickle.dumps(made, protocol=pickle.HIGHEST_PROTOCOL)
                    db.execute("INSERT OR REPLACE INTO fragments VALUES (?, ?, ?, ?)",
                               (post, cache.get("version", ""), data, zlib.crc32(data)))
                else:
                    db.execute("DELETE FROM fragments WHERE post = ?", (post,))
            generation = secrets.token_hex(8)
            small = {name: value for name, value in cache.items() if name not in KINDS}
            small["generation"] = generation
            db.execute("DELETE FROM meta")
            rows = [(name, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) for name, value in small.items()]
            db.executemany("INSERT INTO meta VALUES (?, ?, ?)", [(name, data, zlib.crc32(data)) for name, data in rows])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._saved = {kind: dict(cache.get(kind, {})) for kind in KINDS}
        self._generation = generation


def template_cache(folder: Path):
    """Jinja's compiled templates kept between builds in ``folder`` (compiling the page templates
    again cost every one-post rebuild 0.1 s): Jinja's own file cache, which keys each template by
    name and file and checks the source's hash, with a CRC-32 over each file, so that a damaged or
    half-written one is compiled again, never run (Jinja's check covers the source, not the code).
    ``folder`` should name the code version: the environment's options are in no key. What a build
    compiles is written by ``flush()``, which the builder calls when it saves its cache: a build
    that fails writes nothing."""
    from jinja2 import FileSystemBytecodeCache

    class TemplateCache(FileSystemBytecodeCache):
        def __init__(self, directory: str):
            super().__init__(directory)
            self.pending: dict[str, bytes] = {}

        def load_bytecode(self, bucket) -> None:
            try:
                with open(self._get_cache_filename(bucket), "rb") as f:
                    data = f.read()
            except OSError:
                return
            if len(data) > 4 and zlib.crc32(data[4:]) == int.from_bytes(data[:4], "big"):
                try:
                    bucket.bytecode_from_string(data[4:])
                except Exception:
                    bucket.reset()

        def dump_bytecode(self, bucket) -> None:
            data = bucket.bytecode_to_string()
            self.pending[self._get_cache_filename(bucket)] = zlib.crc32(data).to_bytes(4, "big") + data

        def flush(self) -> None:
            if not self.pending:
                return
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                return
            for old in folder.parent.glob("templates-*"):  # other code versions' templates
                if old != folder and old.is_dir():
                    import shutil

                    shutil.rmtree(old, ignore_errors=True)
            pending, self.pending = self.pending, {}
            for name, data in pending.items():
                tmp = f"{name}.tmp{os.getpid()}"
                try:
                    with open(tmp, "wb") as f:
                        f.write(data)
                    os.replace(tmp, name)
                except OSError:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass

    return TemplateCache(str(folder))
