"""The policy a workflow is governed by, read from the workers' store (tether/policystore.py).

The result is recorded in the workflow's history: the version and its content hash are there
for anyone reading it, and a replay uses exactly what was pinned."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tether import errors
from tether.contracts import DOMAIN, Overlay, PinnedPolicy
from tether.policystore import NoSuchVersion, PolicyConflict, PolicyStore

# When a key the active directory no longer holds was revoked: before any signature.
REMOVED = datetime(1970, 1, 1, tzinfo=UTC)


class PinRequest(BaseModel):
    domain: str = Field(pattern=DOMAIN)
    version: str | None = None  # None: the active version; a name: that stored version
    # The request a live run governs: a request already resolved is not run again.
    request_id: str | None = None


class KeyCheck(BaseModel):
    domain: str = Field(pattern=DOMAIN)
    key_id: str


class PolicyActivities:
    def __init__(
        self,
        store: PolicyStore,
        compute_queue: str | None = None,
        shadow_queue: str | None = None,
        overlays: Callable[[str], list[Overlay]] | None = None,
        model_queue: str | None = None,
        model_queues: Sequence[str] = (),
        resolved: Callable[[str], datetime | None] | None = None,
    ) -> None:
        self._store = store
        self._compute_queue = compute_queue
        self._model_queue = model_queue
        self._model_queues = list(model_queues)
        self._shadow_queue = shadow_queue
        self._overlays = overlays  # a domain's overlays on now (Store.overlays)
        self._resolved = resolved  # when a request's outcome was recorded (Store.resolved_at)

    @activity.defn
    def pin_policy(self, inp: PinRequest) -> PinnedPolicy:
        try:
            pinned = (
                self._store.active(inp.domain)
                if inp.version is None
                else self._store.pinned(inp.domain, inp.version)
            )
        except (NoSuchVersion, PolicyConflict) as err:
            raise ApplicationError(str(err), type=errors.NO_POLICY, non_retryable=True) from None
        if pinned is None:
            raise ApplicationError(
                f"no {inp.domain} policy is active: a worker serving {inp.domain} registers one "
                f"at start, or `tether policy activate VERSION --domain {inp.domain}`",
                type=errors.NO_POLICY,
                non_retryable=True,
            )
        # A live pin (the active version) carries the domain's running candidate, if any, and
        # for one on the live model its policy: it decides inside the live run.
        shadow = self._store.candidate(inp.domain) if inp.version is None else None
        in_run = None
        if shadow is not None and shadow.model_queue is None:
            if shadow.policy_version is None:
                in_run = pinned.policy
            else:
                try:
                    in_run = self._store.pinned(inp.domain, shadow.policy_version).policy
                except (NoSuchVersion, PolicyConflict):  # its own run then fails, on the record
                    in_run = None
        return pinned.model_copy(
            update={
                "compute_queue": self._compute_queue,
                "model_queue": self._model_queue,
                "model_queues": self._model_queues,
                "shadow": shadow,
                "shadow_queue": self._shadow_queue if shadow else None,
                "shadow_policy": in_run,
                "overlays": self._overlays_on(inp) if inp.version is None else None,
                "resolved_at": self._resolved_at(inp),
            }
        )

    def _overlays_on(self, inp: PinRequest) -> list[Overlay] | None:
        """The domain's overlays on now, for the decision to take from the pin; None when
        they cannot be read (the decision then reads them itself, and if it cannot either,
        assumes one on). A pin never fails for them."""
        if self._overlays is None:
            return None
        try:
            return self._overlays(inp.domain)
        except Exception as err:
            activity.logger.warning("overlays not read with the pin: %r", err)
            return None

    def _resolved_at(self, inp: PinRequest) -> datetime | None:
        """When this request's outcome was recorded, by an earlier run under its workflow id
        (this run records its own last). Unreadable fails the pin, which is retried: a run
        must not act before it knows."""
        if self._resolved is None or inp.request_id is None:
            return None
        return self._resolved(inp.request_id)

    @activity.defn
    def key_revoked_at(self, inp: KeyCheck) -> datetime | None:
        """When the active version's directory revoked this key (None: not revoked). A
        workflow pinned its directory at its start; this is how a revocation since then
        still reaches its pending approvals. A key the active directory no longer holds (its
        approver removed, or the key) is revoked: taking someone out of the directory is how
        many would offboard them."""
        active = self._store.active(inp.domain)
        if active is None:
            return None  # nothing stored: the directory pinned is the one there is
        found = active.policy.key(inp.key_id)
        return found[1].revoked_at if found else REMOVED
