"""Signed approvals: who approved is proven by a signature, not claimed by a string.

Each approver holds an Ed25519 key pair (``tether keys new``); the approver directory in the
pinned policy holds the public keys. A review or an edit carries a signature over a
*statement*: the approver, the workflow, the proposal version they saw and a hash of that
proposal, the verdict, the reason, a hash of the edit (if any) and the time of signing. The
workflow's Update validator and signal handler verify it with the pinned directory: a pure,
deterministic check, so it runs inside the workflow like any other validator.

A key file holds the private key: whoever reads it can approve as its approver. Keep it
like a password (mode 0600, one per person); the console's keyring is such a set of files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tether.config import PolicyConfig, key_id
from tether.contracts import Edit, LaterFeedback, Proposal, Review, Signature
from tether.handed import read_small

log = logging.getLogger(__name__)

# A signature from a clock a little ahead of the workflow's still counts.
CLOCK_SKEW = timedelta(minutes=2)


class KeyFileError(ValueError):
    """A key file that cannot be read as one."""


def edit_digest(edit: Edit | None) -> str | None:
    """What of an edit is signed: its answer and tool calls (a tampered edit breaks it)."""
    if edit is None:
        return None
    changed = edit.model_dump(mode="json", include={"answer", "tool_calls"})
    return hashlib.sha256(_canonical(changed)).hexdigest()


def proposal_digest(proposal: Proposal) -> str:
    """What an approver was shown, as they sign it: the whole proposal (answer, calls,
    intent, citations). A run started again under the same id puts another proposal at the
    same version: a signature over this one does not approve that."""
    return hashlib.sha256(_canonical(proposal.model_dump(mode="json"))).hexdigest()


def statement(message: Review | Edit, workflow_id: str, signed_at: datetime, kid: str) -> bytes:
    """The bytes signed and verified: the same on the signer's side and in the workflow."""
    edit = message if isinstance(message, Edit) else None
    # An edit signs as "edit": a review's signature can never be replayed as an edit's.
    verdict = "edit" if isinstance(message, Edit) else message.verdict
    signed: dict[str, Any] = {
        "tether": "approval/1",
        "approver": message.approver,
        "key_id": kid,
        "workflow_id": workflow_id,
        "proposal_version": message.proposal_version,
        "verdict": verdict,
        "reason": message.reason,
        "edit_sha256": edit_digest(edit),
        "signed_at": signed_at.isoformat(),
    }
    if message.proposal_sha256 is not None:  # absent, the bytes signed before it existed
        signed["proposal_sha256"] = message.proposal_sha256
    return _canonical(signed)


def feedback_statement(item: LaterFeedback, signed_at: datetime, kid: str) -> bytes:
    """The bytes a reporter signs for feedback: every field of it but the signature. Its own
    tag: an approval's signature is never feedback's, nor the other way round."""
    signed = item.model_dump(mode="json", exclude={"signature"})
    return _canonical({**signed, "tether": "feedback/1", "key_id": kid,
                       "signed_at": signed_at.isoformat()})  # fmt: skip


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class SigningKey:
    approver: str
    private: Ed25519PrivateKey

    @classmethod
    def new(cls, approver: str) -> SigningKey:
        return cls(approver, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> str:
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @property
    def id(self) -> str:
        return key_id(self.public_key)

    def sign(self, message: Review | Edit, workflow_id: str, now: datetime) -> Signature:
        """``message`` signed for ``workflow_id`` at ``now`` (timezone-aware)."""
        if message.approver != self.approver:
            raise ValueError(f"this key signs for {self.approver}, not {message.approver}")
        return self._signature(statement(message, workflow_id, now, self.id), now)

    def vouch(self, item: LaterFeedback, now: datetime) -> LaterFeedback:
        """``item`` reported by this key's holder, signed at ``now`` (timezone-aware)."""
        item = item.model_copy(update={"reporter": self.approver, "signature": None})
        signature = self._signature(feedback_statement(item, now, self.id), now)
        return item.model_copy(update={"signature": signature})

    def _signature(self, signed: bytes, now: datetime) -> Signature:
        value = base64.b64encode(self.private.sign(signed)).decode()
        return Signature(key_id=self.id, signed_at=now, value=value)

    def save(self, path: Path) -> None:
        """Write the key file, readable by its owner only, never over an existing one."""
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        raw = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        body = {
            "approver": self.approver,
            "key_id": self.id,
            "public_key": self.public_key,
            "private_key": base64.b64encode(raw).decode(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(body, out, indent=2)
            out.write("\n")

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            body = json.loads(read_small(path, 64 * 1024))  # a key is a few hundred bytes
            raw = base64.b64decode(body["private_key"], validate=True)
            key = cls(str(body["approver"]), Ed25519PrivateKey.from_private_bytes(raw))
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
            raise KeyFileError(f"{path}: not a tether key file ({err})") from None
        if body.get("public_key") not in (None, key.public_key):
            raise KeyFileError(f"{path}: its public key does not match its private key")
        return key


def keyring(directory: Path | None) -> dict[str, SigningKey]:
    """The key files in ``directory`` (``*.key``) by approver; the newest file wins (a
    rotated key is a new file)."""
    if directory is None or not directory.is_dir():
        return {}
    loaded: list[tuple[float, SigningKey]] = []
    for path in directory.glob("*.key"):
        try:  # a dangling link, a file gone mid-rotation: skipped like a broken one
            loaded.append((path.stat().st_mtime, SigningKey.load(path)))
        except (OSError, KeyFileError) as err:  # one bad file must not lock the others out
            log.warning("%s", err if isinstance(err, KeyFileError) else f"{path}: {err}")
    return {key.approver: key for _, key in sorted(loaded, key=lambda found: found[0])}


class SignatureRefused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


def verify(message: Review | Edit, policy: PolicyConfig, workflow_id: str, now: datetime) -> None:
    """Raise SignatureRefused (unsigned, unknown_key, revoked_key, bad_signature, expired)
    unless ``message`` is signed, lately, for this workflow, by a live key of its approver.
    ``now`` is the workflow's time: a signer cannot move a revocation by the time it signs."""
    sig = message.signature
    if sig is None:
        raise SignatureRefused("unsigned", "a review must be signed with the approver's key")
    signed = statement(message, workflow_id, sig.signed_at, sig.key_id)
    _verified(message.approver, sig, signed, policy, now, "this review of this request")


def verify_feedback(item: LaterFeedback, policy: PolicyConfig, now: datetime) -> str:
    """The reporter who vouches for ``item``, or SignatureRefused as ``verify`` raises it:
    signed, lately, by a live key its reporter holds in ``policy``'s directory."""
    sig = item.signature
    if sig is None or item.reporter is None:
        raise SignatureRefused("unsigned", "feedback is vouched for by its reporter's signature")
    signed = feedback_statement(item, sig.signed_at, sig.key_id)
    _verified(item.reporter, sig, signed, policy, now, "this feedback")
    return item.reporter


def _verified(
    signer: str, sig: Signature, signed: bytes, policy: PolicyConfig, now: datetime, what: str
) -> None:
    found = policy.key(sig.key_id)
    if found is None or found[0] != signer:
        raise SignatureRefused(
            "unknown_key", f"key {sig.key_id} is not one of {signer}'s in the directory"
        )
    _, key = found
    if key.revoked_at is not None and now >= key.revoked_at:  # the workflow's clock, not theirs
        raise SignatureRefused("revoked_key", f"key {sig.key_id} was revoked at {key.revoked_at}")
    try:  # a key the directory holds that is no curve point is as good as a wrong signature
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key))
        public.verify(base64.b64decode(sig.value), signed)
    except (InvalidSignature, ValueError):
        raise SignatureRefused("bad_signature", f"the signature does not match {what}") from None
    if sig.signed_at > now + CLOCK_SKEW:
        raise SignatureRefused(
            "expired",
            f"signed at {sig.signed_at.isoformat()}, after now ({now.isoformat()}): the "
            f"signer's clock runs ahead by more than {CLOCK_SKEW}; set it right and sign again",
        )
    if now - sig.signed_at > policy.signature_ttl:
        raise SignatureRefused(
            "expired",
            f"signed at {sig.signed_at.isoformat()}; a signature counts for "
            f"{policy.signature_ttl} (now {now.isoformat()})",
        )


def key_file(directory: Path, approver: str) -> Path:
    return directory / f"{approver}.key"


def directory_for(people: Mapping[str, list[str]], keys: Path) -> dict[str, dict[str, Any]]:
    """An approver directory for ``people`` (approver -> roles) with a key each, made in the
    keyring ``keys`` on first use and kept: for the demo and the tests, which configure their
    own people (a deployment lists its own, with the public keys they sent in)."""
    directory: dict[str, dict[str, Any]] = {}
    for approver, roles in people.items():
        path = key_file(keys, approver)
        if not path.exists():
            SigningKey.new(approver).save(path)
        key = SigningKey.load(path)
        directory[approver] = {"roles": list(roles), "keys": [{"public_key": key.public_key}]}
    return directory
