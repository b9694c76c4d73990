"""The compact animation encoding: what a page fetches to play a figure's training steps.

A figure with D dots and F frames is a D x F grid of positions. Each position is stored as a code
relative to its parameter's axis (0 = left end, ``2**bits - 2`` = right end; ``2**bits - 1`` =
missing or not finite), because the browser only needs to know *where* a dot is; 8 bits give 255
positions, finer than the pixels of an inline plot. Codes are stored dot by dot (each dot's path
through training is contiguous) as differences from the previous frame: dots move smoothly, so
the differences are small and repeat, and gzip shrinks them well. 16-bit codes are split into a
high-byte plane and a low-byte plane for the same reason.

Layout (little-endian) before gzip::

    b"SGF1"  uint8 bits  3 bytes zero  uint32 dots  uint32 frames  payload

The browser decompresses with ``DecompressionStream('gzip')``; :func:`decode` is the reference.
"""
from __future__ import annotations

import gzip
import struct

MAGIC = b"SGF1"


def missing_code(bits: int) -> int:
    return (1 << bits) - 1


def quantize(fractions, bits: int = 8):
    """Fractions of the axis (``nan`` = missing) -> integer codes; values outside [0, 1] are clamped."""
    import numpy as np

    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    t = np.asarray(fractions, dtype="float64")
    top = missing_code(bits) - 1
    missing = ~np.isfinite(t)
    codes = np.rint(np.clip(np.where(missing, 0.0, t), 0.0, 1.0) * top)
    codes[missing] = top + 1
    return codes.astype(np.uint8 if bits == 8 else np.uint16)


#: published animations of up to this many codes are gzipped at level 9; bigger ones at level 6
#: (every bundled figure is below it: the largest has 343,200 codes)
LEVEL9_CODES = 1 << 19


def level_for(size: int, partial: bool = False) -> int:
    """The gzip level for an animation of ``size`` codes: 1 while a run is still training (the preview
    redraws it every few hundred milliseconds); 9 for a published page up to :data:`LEVEL9_CODES`, 6
    beyond. Level 9's longer match search costs more the bigger and more repetitive the codes are: on the
    6M-row benchmark's 600,000 codes it took 0.40 s of CPU, level 6 0.07 s, for 3.1 % more bytes
    (195,201 -> 201,347); on the largest bundled figure (343,200 codes) 0.08 s against 0.01 s."""
    if partial:
        return 1
    return 9 if size <= LEVEL9_CODES else 6


def encode(codes, bits: int = 8, level: int = 9) -> bytes:
    """``codes`` (dots x frames) -> gzip bytes in the layout above. Deterministic (no gzip timestamp).

    ``level``: gzip's (:func:`level_for` chooses it for a figure). The whole grid given at once to a
    :class:`Stream`, which figures feed a few dots at a time."""
    import numpy as np

    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError("codes must be a 2-d array (dots x frames)")
    stream = Stream(*codes.shape, bits=bits, level=level, thread=False)
    stream.feed_codes(codes)
    return stream.result()


class Stream:
    """The gzipped layout above for ``dots`` x ``frames`` fractions of the axis, given a few dots at a time
    in order (:meth:`feed`) while the caller works out the next ones: each block is quantized and
    differenced on the caller's thread and gzipped on another (zlib lets go of the GIL). Deflate's output
    does not depend on how its input is cut, so the bytes are those of the whole grid given at once
    (:func:`encode`), byte for byte.

    ``thread``: False compresses on the caller's thread (a small figure: a thread costs more than its
    whole encoding)."""

    def __init__(self, dots: int, frames: int, bits: int = 8, level: int = 9, thread: bool = True):
        import queue
        import threading
        import weakref
        import zlib

        self.bits, self._low, self._parts, self._error = bits, [], [], []
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)   # what gzip.compress(mtime=0) uses
        self._queue = self._thread = None
        if thread:
            q, z, parts, error = queue.SimpleQueue(), self._z, self._parts, self._error

            def work():  # holds no reference to the stream, so one dropped unfinished is collected
                try:
                    end = False
                    while not end:
                        got = [q.get()]
                        while not q.empty():
                            got.append(q.get())
                        if got[-1] is None:
                            end = True
                            got.pop()
                        if not error and got:
                            parts.append(z.compress(b"".join(got)))
                except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
                    error.append(exc)

            self._queue = q
            self._thread = threading.Thread(target=work, name="sitegen figure gzip", daemon=True)
            self._thread.start()
            self._end = weakref.finalize(self, q.put, None)   # and its thread ends then
        self._put(MAGIC + struct.pack("<B3xII", bits, dots, frames))

    def _put(self, data: bytes) -> None:
        if self._queue is not None:
            self._queue.put(data)
        else:
            self._parts.append(self._z.compress(data))

    def feed(self, fractions) -> None:
        """The next dots' fractions (dots x frames; ``nan``: missing)."""
        self.feed_codes(quantize(fractions, self.bits))

    def feed_codes(self, codes) -> None:
        """The next dots' codes (dots x frames, :func:`quantize`'s): each dot's differences from its
        previous frame; 16-bit ones as a high-byte plane now and a low-byte plane after every dot."""
        import numpy as np

        c = np.asarray(codes).astype(np.uint8 if self.bits == 8 else np.uint16, copy=False)
        delta = c.copy()
        delta[:, 1:] = c[:, 1:] - c[:, :-1]  # wraps modulo 2**bits, undone by the same wrap
        if self.bits == 8:
            self._put(delta.tobytes())
        else:  # the high-byte plane of every dot first, then the low-byte plane
            self._put((delta >> 8).astype(np.uint8).tobytes())
            self._low.append((delta & 0xFF).astype(np.uint8).tobytes())

    def result(self) -> bytes:
        """The gzip bytes, once every dot has been fed."""
        for low in self._low:
            self._put(low)
        if self._thread is not None:
            self._end()
            self._thread.join()
        if self._error:
            raise self._error[0]
        return b"".join(self._parts) + self._z.flush()


def decode(blob: bytes):
    """The inverse of :func:`encode`: ``(codes, bits)``."""
    import numpy as np

    raw = gzip.decompress(blob)
    if raw[:4] != MAGIC:
        raise ValueError("not a sitegen figure data file")
    bits, dots, frames = struct.unpack("<B3xII", raw[4:16])
    body = np.frombuffer(raw[16:], dtype=np.uint8)
    if bits == 8:
        delta = body.reshape(dots, frames).copy()
    else:
        n = dots * frames
        delta = (body[:n].astype(np.uint16) << 8 | body[n:2 * n].astype(np.uint16)).reshape(dots, frames)
    codes = np.cumsum(delta, axis=1, dtype=delta.dtype)  # sums wrap modulo 2**bits like the encoder
    return codes, bits
