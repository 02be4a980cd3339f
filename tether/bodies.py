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
        # "gzip, identity" is gzip; two codings one over the other are not read here.
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        applied = [c for c in codings if c not in ("", "identity")]
        encoding = applied[0] if len(applied) == 1 else ",".join(applied) or "identity"
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise BodyUnreadable(f"content encoding {encoding!r} is not read here")
        self.encoding, self.limit = encoding, limit
        self._inflate = self._inflater() if encoding != "identity" else None
        self._fed = False
        self._body = bytearray()

    @staticmethod
    def _inflater() -> zlib._Decompress:
        # gzip or zlib-wrapped deflate (HTTP's "deflate"), told apart by their header.
        return zlib.decompressobj(zlib.MAX_WBITS | 32)

    def feed(self, raw: bytes) -> None:
        pending = raw
        self._fed = self._fed or bool(raw)
        try:
            while pending:
                if self._inflate is None:
                    piece, pending = pending, b""
                else:  # at most what still fits, plus one byte to know it did not
                    piece = self._inflate.decompress(pending, self.limit + 1 - len(self._body))
                    pending = self._inflate.unconsumed_tail
                    if self._inflate.eof and self._inflate.unused_data:
                        # Another gzip member after this one: read on, as gzip does.
                        pending = self._inflate.unused_data + pending
                        self._inflate = self._inflater()
                self._body += piece
                if len(self._body) > self.limit:
                    raise BodyTooLarge(f"larger than {self.limit:,} bytes")
        except zlib.error as err:
            raise BodyUnreadable(f"not {self.encoding} data: {err}") from None

    def body(self) -> bytes:
        """The whole body; BodyUnreadable when a compressed one was cut short (a part of a
        page is not the page)."""
        if self._inflate is not None and self._fed and not self._inflate.eof:
            raise BodyUnreadable(f"{self.encoding} data cut short")
        return bytes(self._body)
