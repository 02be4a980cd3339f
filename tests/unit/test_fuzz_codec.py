"""Bad input, fuzzed, at the payload codec: any payload (bytes, metadata) decodes to itself,
under its key or after a rotation; one changed byte, another namespace or a key this process
does not hold, and it does not decode at all."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload

from tether.codec import ENCODING, KEY_ID, EncryptionCodec, UnknownKey

pytestmark = pytest.mark.fuzz

KEYS = st.binary(min_size=32, max_size=32)
NAMESPACES = st.sampled_from(["default", "prod", "tenant-a"]) | st.text(min_size=1, max_size=8)
METADATA = st.dictionaries(
    st.sampled_from(["encoding", "messageType"]) | st.text(max_size=4),
    st.sampled_from([b"json/plain", b"binary/null", ENCODING]) | st.binary(max_size=8),
    max_size=2,
)
PAYLOAD = st.builds(
    lambda metadata, data: Payload(metadata=metadata, data=data), METADATA, st.binary()
)
PAYLOADS = st.lists(PAYLOAD, min_size=1, max_size=3)


def run(step: Coroutine[Any, Any, list[Payload]]) -> list[Payload]:
    """The codec's coroutines wait on nothing: run one to its end in a single step."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the codec waited on something")


@given(payloads=PAYLOADS, old=KEYS, new=KEYS, namespace=NAMESPACES)
def test_a_payload_decodes_as_it_was_under_its_key_and_after_a_rotation(
    payloads: list[Payload], old: bytes, new: bytes, namespace: str
) -> None:
    before = EncryptionCodec({"a": old}, "a", namespace)
    encoded = run(before.encode(payloads))
    assert [p.metadata[KEY_ID] for p in encoded] == [b"a"] * len(payloads)
    assert all(p.metadata["encoding"] == ENCODING for p in encoded)
    assert run(before.decode(encoded)) == payloads
    rotated = EncryptionCodec({"a": old, "b": new}, "b", namespace)
    assert run(rotated.decode(encoded)) == payloads  # old payloads decode
    again = run(rotated.encode(payloads))
    assert {p.metadata[KEY_ID] for p in again} == {b"b"}  # new ones take the primary key
    assert run(rotated.decode(again)) == payloads
    with pytest.raises(UnknownKey):  # the old key retired: its payloads are unreadable
        run(EncryptionCodec({"b": new}, "b", namespace).decode(encoded))
    if not any(p.metadata.get("encoding") == ENCODING for p in payloads):
        assert run(rotated.decode(payloads)) == payloads  # written before encryption was on


@given(
    payload=PAYLOAD,
    key=KEYS,
    other=KEYS,
    namespace=NAMESPACES,
    elsewhere=NAMESPACES,
    where=st.integers(min_value=0),
    flip=st.integers(1, 255),
)
def test_a_changed_or_moved_payload_does_not_decode(
    payload: Payload,
    key: bytes,
    other: bytes,
    namespace: str,
    elsewhere: str,
    where: int,
    flip: int,
) -> None:
    codec = EncryptionCodec({"a": key, "b": other}, "a", namespace)
    [sealed] = run(codec.encode([payload]))
    data = bytearray(sealed.data)
    data[where % len(data)] ^= flip
    changed = Payload(metadata=sealed.metadata, data=bytes(data))
    with pytest.raises(InvalidTag):
        run(codec.decode([changed]))
    if elsewhere != namespace:
        with pytest.raises(InvalidTag):
            run(EncryptionCodec({"a": key}, "a", elsewhere).decode([sealed]))
    if other != key:  # named as sealed by another key this process holds
        relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"b"}, data=sealed.data)
        with pytest.raises(InvalidTag):
            run(codec.decode([relabelled]))
