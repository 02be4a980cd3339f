"""Reading an HTTP body from a server that may be hostile: decompressed here, and measured as
it is inflated, so a body compressed a thousand to one never exists whole in memory."""

from __future__ import annotations

import zlib

# What a client of ours asks for, and so all it inflates (no brotli, no zstd).
ACCEPT_ENCODING = "gzip, deflate"


class BodyTooLarge(ValueError):
    pass


class BodyUnreadable(ValueError):
    pass


class BoundedBody:
    """Raw chunks in (as ``iter_raw``/``aiter_raw`` give them), the body out; past ``limit``
    decompressed bytes it raises BodyTooLarge, having inflated at most one byte more."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise BodyUnreadable(f"content encoding {encoding!r} is not read here")
        self.encoding, self.limit = encoding, limit
        # gzip or zlib-wrapped deflate (HTTP's "deflate"), told apart by their header.
        self._inflate = None if encoding == "identity" else zlib.decompressobj(zlib.MAX_WBITS | 32)
        self._body = bytearray()

    def feed(self, raw: bytes) -> None:
        pending = raw
        try:
            while pending:
                if self._inflate is None:
                    piece, pending = pending, b""
                else:  # at most what still fits, plus one byte to know it did not
                    piece = self._inflate.decompress(pending, self.limit + 1 - len(self._body))
                    pending = self._inflate.unconsumed_tail
                self._body += piece
                if len(self._body) > self.limit:
                    raise BodyTooLarge(f"larger than {self.limit:,} bytes")
        except zlib.error as err:
            raise BodyUnreadable(f"not {self.encoding} data: {err}") from None

    def body(self) -> bytes:
        return bytes(self._body)
