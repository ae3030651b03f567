"""DigestingWriter: the bytes on disk and both digests are exactly those of the stream, at any size."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import mmap
import os
from pathlib import Path

import pytest

from glancecache_client.server.engine.digesting import COPY_CHUNK, DigestingWriter


def takes_o_direct(directory: Path) -> bool:
    """Whether an aligned O_DIRECT write works in ``directory`` (decided here independently of the writer)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    buffer = mmap.mmap(-1, 4096)
    try:
        fd = os.open(directory / "probe", os.O_WRONLY | os.O_CREAT | flag, 0o600)
    except OSError:
        return False
    try:
        os.pwrite(fd, buffer, 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        (directory / "probe").unlink()
        buffer.close()


def write_in_odd_chunks(path: Path, data: bytes, *, direct: bool) -> DigestingWriter:
    with path.open("wb") as out:
        writer = DigestingWriter(out, direct=direct)
        for start in range(0, len(data), 70_000):  # odd chunk size: blocks are gathered across chunk borders
            writer.write(data[start : start + 70_000])
        writer.close()
    return writer


@pytest.mark.parametrize("direct", [False, True], ids=["page-cache", "o-direct"])
@pytest.mark.parametrize(
    "size", [0, 1, 65536, COPY_CHUNK - 1, COPY_CHUNK, COPY_CHUNK + 4096, 5 * COPY_CHUNK + 12345, 40 * COPY_CHUNK]
)
def test_file_and_digests_match_the_stream(tmp_path: Path, size: int, direct: bool) -> None:
    data = os.urandom(size)
    path = tmp_path / "out"
    writer = write_in_odd_chunks(path, data, direct=direct)
    assert path.read_bytes() == data
    assert writer.size == size
    assert writer.md5_hex() == hashlib.md5(data).hexdigest()
    assert writer.sha512_hex() == hashlib.sha512(data).hexdigest()
    # Small streams never leave the caller's thread, so they never go direct.
    assert writer.direct == (direct and size >= COPY_CHUNK and takes_o_direct(tmp_path))


def test_o_direct_is_not_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "O_DIRECT")  # as on macOS
    data = os.urandom(3 * COPY_CHUNK + 100)
    writer = write_in_odd_chunks(tmp_path / "out", data, direct=True)
    assert not writer.direct
    assert (tmp_path / "out").read_bytes() == data and writer.md5_hex() == hashlib.md5(data).hexdigest()


def test_a_filesystem_refusing_o_direct_writes_gets_buffered_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some filesystems accept O_DIRECT at open and fail the writes with EINVAL; the probe write finds out.
    real_pwrite = os.pwrite

    def refusing_pwrite(fd: int, data: object, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", refusing_pwrite)
    data = os.urandom(3 * COPY_CHUNK + 100)
    writer = write_in_odd_chunks(tmp_path / "out", data, direct=True)
    assert not writer.direct
    assert (tmp_path / "out").read_bytes() == data and writer.sha512_hex() == hashlib.sha512(data).hexdigest()


def test_o_direct_cancel_keeps_what_was_taken(tmp_path: Path) -> None:
    path = tmp_path / "partial"
    data = os.urandom(2 * COPY_CHUNK + 5000)
    with path.open("wb") as out:
        writer = DigestingWriter(out, direct=True)
        writer.write(data)
        writer.cancel()
    assert path.read_bytes() == data


def test_cancel_keeps_what_was_written_and_ends_threads(tmp_path: Path) -> None:
    import threading

    before = threading.active_count()
    path = tmp_path / "partial"
    with path.open("wb") as out:
        writer = DigestingWriter(out)
        writer.write(b"x" * (3 * COPY_CHUNK))
        writer.cancel()
        writer.cancel()  # a no-op once ended
    assert path.stat().st_size == 3 * COPY_CHUNK
    assert threading.active_count() == before


class FailingFile(io.BytesIO):
    def write(self, data: object) -> int:
        raise OSError(28, "No space left on device")


def test_a_failed_write_surfaces() -> None:
    writer = DigestingWriter(FailingFile())  # type: ignore[arg-type]
    with pytest.raises(OSError, match="No space left"):
        for _ in range(40):
            writer.write(b"y" * COPY_CHUNK)
        writer.close()


def test_a_failed_o_direct_write_surfaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not takes_o_direct(tmp_path):
        pytest.skip(f"{tmp_path} does not take O_DIRECT writes")
    real_pwrite = os.pwrite
    direct_writes = 0

    def pwrite_until_disk_full(fd: int, data: object, offset: int) -> int:
        nonlocal direct_writes
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            direct_writes += 1
            if direct_writes > 2:  # the probe and one block go through
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", pwrite_until_disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_in_odd_chunks(tmp_path / "out", os.urandom(4 * COPY_CHUNK), direct=True)

