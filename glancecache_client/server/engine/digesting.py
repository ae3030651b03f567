"""Writing image data to disk while computing its size and digests (MD5, SHA-512), fast and with flat memory.

Owns ``DigestingWriter``, used by the store for uploads (both digests: Glance's ``checksum`` and
``os_hash_value``) and by the cache engine for every fill (the digests it verifies). Hashing one after
the other on the request's thread was most of the time of a 256 MiB fill. Here the file write and each digest run on
their own helper thread once the data is large, fed through bounded queues; cache fills also write with
O_DIRECT where the filesystem allows it (see ``_DirectWriter``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import mmap
import os
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from typing import BinaryIO

__all__ = ["BOTH_DIGESTS", "COPY_CHUNK", "DigestingWriter"]

BOTH_DIGESTS = ("md5", "sha512")
"""What Glance records of every upload: ``checksum`` (MD5) and ``os_hash_value`` (SHA-512 by default)."""

COPY_CHUNK = 1024 * 1024
"""Bytes per read when the server copies image data itself (cache fills): fewer, cheaper steps per byte."""

WRITE_SLICE = 64 * 1024
"""Largest single write(2) of image data. Measured (Linux 6.x, ext4, a well-used page cache): writing 256 MiB
in 1 MiB writes cost 0.8-1.2 s of kernel time, in 128 KiB writes sometimes as much, in 64 KiB writes 0.1 s
every time (the kernel sizes page-cache folios by the write, and large ones are costly to find)."""

WRITEBACK_EVERY = 16 * 1024 * 1024
"""A DigestingWriter asks the kernel to start writing its file back every this many bytes (Linux)."""

DIRECT_ALIGN = 4096
"""Offset, length and memory alignment that O_DIRECT writes keep (a page; every Linux block size divides it)."""

_STAGE_WINDOW = 8
"""Blocks (of about COPY_CHUNK) a DigestingWriter stage may fall behind before the writer is held back."""


def _load_start_writeback() -> Callable[[int, int, int], object] | None:
    """``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)`` from libc, or None off Linux.

    It queues dirty pages for writing and returns at once, so the fsync that has to precede the rename of a
    finished file waits for a few MiB instead of the whole image.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    sync_file_range_write = 2
    return lambda fd, offset, length: function(fd, offset, length, sync_file_range_write)


_start_writeback = _load_start_writeback()


class _DirectWriter:
    """Writes a file through a second descriptor opened with O_DIRECT, from one page-aligned staging buffer.

    Why: with the page cache, a fill's write(2) calls copy every byte into freshly allocated cache pages, and on
    this VM that copy swung between 0.1 s and 1 s of kernel time per 256 MiB (fresh guest pages are slow to
    touch), on the CPUs the two digests need: fills of the same image alternated between 0.6 s and 1.2 s. With
    O_DIRECT the device reads the staging buffer itself; the fill pays one user-space copy into that buffer and
    the device's time, on a thread that only waits. Fills ran at 0.45-0.7 s, a 1 GiB fill in 2.1-2.6 s instead
    of 3.4-4.0 s, and filling a large image no longer pushes the node's hot pages out of memory (as with
    ``dd oflag=direct``). The price: the first hit of an image reads it from disk rather than from memory.

    Whole buffers go out as they fill; ``finish`` writes the aligned rest directly and the last partial page
    through the ordinary file object. Used only where a probe write at open succeeds.
    """

    def __init__(self, out: BinaryIO, direct_fd: int, buffer: mmap.mmap) -> None:
        self.out = out
        self.fd = direct_fd
        self.buffer = buffer
        self.staged = 0
        self.offset = 0  # where the staging buffer starts in the file

    @classmethod
    def open(cls, out: BinaryIO) -> _DirectWriter | None:
        """A direct writer for the still empty ``out``; None where O_DIRECT does not work (tmpfs, some network
        and FUSE filesystems, non-Linux, not a real file): the caller then writes through ``out`` as usual."""
        flag = getattr(os, "O_DIRECT", 0)
        try:
            if not flag or out.tell() != 0:
                return None
            fd = os.open(f"/proc/self/fd/{out.fileno()}", os.O_WRONLY | flag)
        except (OSError, ValueError, io.UnsupportedOperation):
            return None
        try:
            # Some filesystems accept O_DIRECT at open and refuse the writes: find out before the first byte.
            with mmap.mmap(-1, DIRECT_ALIGN) as probe:  # anonymous mappings are page-aligned
                os.pwrite(fd, probe, 0)
            os.ftruncate(fd, 0)
        except OSError:
            os.close(fd)
            return None
        return cls(out, fd, mmap.mmap(-1, COPY_CHUNK))

    def write(self, block: bytes) -> None:
        view = memoryview(block)
        while view:
            taken = min(len(view), COPY_CHUNK - self.staged)
            self.buffer[self.staged : self.staged + taken] = view[:taken]
            self.staged += taken
            view = view[taken:]
            if self.staged == COPY_CHUNK:
                self._write_staged(COPY_CHUNK)

    def finish(self) -> None:
        """Write what is staged: whole pages directly, the partial last page through ``out``."""
        aligned = self.staged // DIRECT_ALIGN * DIRECT_ALIGN
        tail = self.buffer[aligned : self.staged]
        if aligned:
            self._write_staged(aligned)
        if tail:
            self.out.seek(self.offset)
            self.out.write(tail)

    def close(self) -> None:
        os.close(self.fd)
        self.buffer.close()

    def _write_staged(self, length: int) -> None:
        done = 0
        while done < length:
            part = memoryview(self.buffer)[done:length]
            try:
                done += os.pwrite(self.fd, part, self.offset + done)
            finally:
                part.release()  # an error's traceback must not keep the buffer exported: close() unmaps it
        self.offset += length
        self.staged = 0


class _Stage:
    """One helper thread applying ``apply`` to every block handed to it, in order, through a bounded queue."""

    def __init__(self, name: str, apply: Callable[[bytes], object]) -> None:
        self.apply = apply
        self.error: BaseException | None = None
        self.skip = False  # set by DigestingWriter.cancel: hashing stops, writing goes on
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=_STAGE_WINDOW)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, block: bytes) -> None:
        self._blocks.put(block)  # blocks while the stage is _STAGE_WINDOW behind: memory stays flat

    def stop(self) -> None:
        """Wait until every block handed over is processed (or skipped) and end the thread."""
        self._blocks.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            if self.error is None and not self.skip:
                try:
                    self.apply(block)
                except BaseException as exc:  # kept for the writer's thread; this one drains the rest
                    self.error = exc


class DigestingWriter:
    """Writes a stream of chunks to ``out`` while computing the size and the ``algorithms`` digests of the bytes.

    Small chunks are gathered into blocks of about COPY_CHUNK. Below one block nothing leaves the calling
    thread (a small image costs no thread). From the first full block on, the file write and each digest
    run on a helper thread: file writes and hashlib updates of large buffers release the GIL,
    so they overlap with each other and with the caller (which goes on, e.g., sending the same bytes
    to a client). Each helper is fed through a bounded queue: the caller is held back when one falls
    _STAGE_WINDOW blocks behind, so memory stays flat whatever the size. With ``direct=True`` the write
    helper writes through O_DIRECT where a probe shows the filesystem takes it (``direct`` tells); ``out``
    must then be empty, and is positioned anywhere afterwards.

    A write error of the file surfaces on a later ``write`` or on ``close``. ``close`` (everything written
    and hashed) or ``cancel`` (what was given is written, the hashing stops) must end every writer, or its
    helpers wait forever; once ended, both are no-ops. Neither closes ``out``.
    """

    def __init__(self, out: BinaryIO, *, name: str = "digest", direct: bool = False,
                 algorithms: Sequence[str] = BOTH_DIGESTS) -> None:  # fmt: skip
        self.out = out
        self._want_direct = direct  # large streams through O_DIRECT where the filesystem takes it (cache fills)
        self._direct: _DirectWriter | None = None
        self.size = 0
        self._name = name
        # usedforsecurity=False: FIPS builds refuse MD5 otherwise; every digest here is checked against a record.
        self._digests = {algorithm: hashlib.new(algorithm, usedforsecurity=False) for algorithm in algorithms}
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._writer: _Stage | None = None  # the helpers, once the data reaches one block
        self._hashers: list[_Stage] = []
        self._ended = False
        self._written = 0  # by the writer stage
        self._written_back = 0  # writeback requested up to here

    def write(self, chunk: bytes) -> None:
        """Take ``chunk``. Raises the error of an earlier failed file write (typically OSError)."""
        if not chunk:
            return
        self.size += len(chunk)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= COPY_CHUNK:
            self._dispatch(hash_it=True)

    def close(self) -> None:
        """Write and hash everything taken, then wait for the helpers. Raises a file write error."""
        if self._ended:
            return
        try:
            if self._pending:
                self._dispatch(hash_it=True)
        finally:
            self._end()
        if self._writer is not None and self._writer.error is not None:
            raise self._writer.error

    def cancel(self) -> None:
        """Stop: write what was taken (the partial file keeps it) without hashing it. Never raises."""
        if self._ended:
            return
        for hasher in self._hashers:
            hasher.skip = True
        try:
            if self._pending:
                self._dispatch(hash_it=False)
        except Exception:
            pass  # a failed write of a partial file that is being thrown away anyway
        finally:
            self._end()

    @property
    def direct(self) -> bool:
        """True once the data goes to disk through O_DIRECT (asked for, large enough, and supported)."""
        return self._direct is not None

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._digests)

    def hexdigest(self, algorithm: str) -> str:
        """The digest of everything taken; KeyError if ``algorithm`` was not among those computed."""
        return self._digests[algorithm].hexdigest()

    def md5_hex(self) -> str:
        return self.hexdigest("md5")

    def sha512_hex(self) -> str:
        return self.hexdigest("sha512")

    def _dispatch(self, *, hash_it: bool) -> None:
        block = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if self._writer is None and len(block) < COPY_CHUNK:
            # The whole stream is under one block (a small image, or the end of a short one): inline.
            self._write_out(block)
            if hash_it:
                for digest in self._digests.values():
                    digest.update(block)
            return
        if self._writer is None:
            if self._want_direct:
                self._direct = _DirectWriter.open(self.out)
            write = self._write_out if self._direct is None else self._direct.write
            self._writer = _Stage(f"{self._name}-write", write)
            self._hashers = [
                _Stage(f"{self._name}-{algorithm}", digest.update) for algorithm, digest in self._digests.items()
            ]
        if self._writer.error is not None:
            raise self._writer.error
        self._writer.put(block)
        for hasher in self._hashers:
            hasher.put(block)

    def _write_out(self, block: bytes) -> None:
        if len(block) <= WRITE_SLICE:
            self.out.write(block)
        else:
            view = memoryview(block)
            for start in range(0, len(view), WRITE_SLICE):
                self.out.write(view[start : start + WRITE_SLICE])
        self._written += len(block)
        if self._written - self._written_back >= WRITEBACK_EVERY:
            self._request_writeback()

    def _request_writeback(self) -> None:
        if _start_writeback is not None:
            try:
                self.out.flush()
                fd = self.out.fileno()
            except (OSError, ValueError):  # not a real file: nothing to write back
                return
            _start_writeback(fd, self._written_back, self._written - self._written_back)  # errors: no matter
        self._written_back = self._written

    def _end(self) -> None:
        self._ended = True
        for stage in (self._writer, *self._hashers):
            if stage is not None:
                stage.stop()
        direct, writer = self._direct, self._writer
        if direct is not None and writer is not None:
            try:
                if writer.error is None:
                    direct.finish()
            except BaseException as exc:  # a write error like any other: close() raises it, cancel() ignores it
                writer.error = exc
            finally:
                direct.close()
