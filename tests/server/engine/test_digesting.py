"""DigestingWriter: the bytes on disk and both digests are exactly those of the stream, at any size."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from glancecache_client.server.digesting import COPY_CHUNK, DigestingWriter


@pytest.mark.parametrize("size", [0, 1, 65536, COPY_CHUNK - 1, COPY_CHUNK, 5 * COPY_CHUNK + 12345, 40 * COPY_CHUNK])
def test_file_and_digests_match_the_stream(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "out"
    with path.open("wb") as out:
        writer = DigestingWriter(out)
        for start in range(0, size, 70_000):  # odd chunk size: blocks are gathered across chunk borders
            writer.write(data[start : start + 70_000])
        writer.close()
    assert path.read_bytes() == data
    assert writer.size == size
    assert writer.md5_hex() == hashlib.md5(data).hexdigest()
    assert writer.sha512_hex() == hashlib.sha512(data).hexdigest()


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
