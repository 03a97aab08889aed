"""Bounded decoding of table files: gzip, xz and Parquet (:func:`muxsim.io.read_table`).

A compressed file is decompressed up to a limit and no further, so a decompression bomb
stops there; the xz decoder's memory is bounded too. Errors name the file, never its
content.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from muxsim.errors import InputError
from muxsim.limits import MAX_TABLE_BYTES


def mib(n: int) -> str:
    """Bytes as MiB for messages (``256``, ``1.5``)."""
    return f"{n / 2**20:.4g}"


def gunzip(data: bytes, p: Path, what: str, limit: int = MAX_TABLE_BYTES) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error:
        raise InputError(f"{what}: {str(p)!r} is not a gzip file") from None
    if len(out) > limit or d.unconsumed_tail:
        raise InputError(f"{what}: {str(p)!r} holds more than {mib(limit)} MiB once decompressed")
    return out


def unxz(data: bytes, p: Path, what: str, limit: int) -> bytes:
    """xz (LZMA) streams, one after another as ``xz`` writes them, decompressed up to
    ``limit`` bytes; the decoder's memory is bounded too."""
    import lzma

    out, rest = [], data
    size = 0
    while True:
        d = lzma.LZMADecompressor(memlimit=MAX_TABLE_BYTES)
        try:
            part = d.decompress(rest, limit - size + 1)
        except lzma.LZMAError:
            raise InputError(f"{what}: {str(p)!r} is not an xz file (or needs too much memory to decompress)") from None
        size += len(part)
        out.append(part)
        if size > limit or (not d.eof and not d.needs_input):
            raise InputError(f"{what}: {str(p)!r} holds more than {mib(limit)} MiB once decompressed")
        if not d.eof:
            raise InputError(f"{what}: {str(p)!r} is not a complete xz file")
        rest = d.unused_data.lstrip(b"\x00")  # stream padding
        if not rest:
            return b"".join(out)


def read_parquet(data: bytes, p: Path, what: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(pa.BufferReader(data))
        meta = f.metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > MAX_TABLE_BYTES:
            raise InputError(f"{what}: {str(p)!r} holds more than {mib(MAX_TABLE_BYTES)} MiB once decompressed")
        return f.read().to_pandas()
    except InputError:
        raise
    except (OSError, ValueError, pa.ArrowException):
        raise InputError(f"{what}: cannot read {str(p)!r} as Parquet") from None
