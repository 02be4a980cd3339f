"""History encrypted at rest: an AES-256-GCM payload codec (part of issue 14's trust seam).

Every payload Temporal stores (workflow input, activity arguments and results, signals,
updates, memos, summaries) leaves this process encrypted. Request text, subject ids, messages and
approver ids are then unreadable in Temporal's database and to anyone with namespace access
but without a key. Each encrypted payload names its key id in its metadata, so keys rotate:
the primary key encrypts, every configured key decrypts. The namespace is bound as associated
data, so a payload copied into another namespace does not decrypt there.

Workers, clients, the CLI and replay all take the converter from ``data_converter(settings)``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from tether.config import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE = 12


class UnknownKey(ValueError):
    """A payload encrypted with a key this process does not hold."""

    def __init__(self, key_id: str, held: Sequence[str]) -> None:
        super().__init__(f"payload encrypted with key {key_id!r}; held: {sorted(held)}")
        self.key_id = key_id


def new_key() -> str:
    """A fresh key, as TETHER_ENCRYPTION__KEYS takes it (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes], primary: str, namespace: str) -> None:
        if primary not in keys:
            raise ValueError(f"primary key {primary!r} is not among the keys {sorted(keys)}")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._primary = primary
        self._aad = namespace.encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._primary]
        out = []
        for payload in payloads:
            nonce = os.urandom(NONCE)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), self._aad)
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self._primary.encode()},
                    data=nonce + sealed,
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)  # written before encryption was on: readable as it is
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(kid)
            if cipher is None:
                raise UnknownKey(kid, list(self._ciphers))
            plain = cipher.decrypt(payload.data[:NONCE], payload.data[NONCE:], self._aad)
            out.append(Payload.FromString(plain))
        return out


def codec_for(settings: Settings) -> EncryptionCodec | None:
    config = settings.encryption
    if not config.keys:
        return None
    keys = {kid: base64.b64decode(k.get_secret_value()) for kid, k in config.keys.items()}
    primary = config.primary or sorted(keys)[-1]
    return EncryptionCodec(keys, primary, settings.temporal_namespace)


def data_converter(settings: Settings) -> DataConverter:
    """pydantic's converter, encrypting when keys are configured."""
    codec = codec_for(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)
