"""Errors Tether raises, and the ``ApplicationError.type`` names that cross Temporal.

Client side (Python exceptions)::

    TetherError
    ├── InvalidRequest     the request broke its contract (or named no served domain);
    │                      no workflow was started
    ├── RequestConflict    a request id already names another request (other subject, text
    │                      or domain): nothing was started, nothing of the other is shown
    ├── ReviewRejected     an approval Update was refused; ``.code`` says why
    ├── FeedbackRefused    signed feedback was refused (``.code``: bad_signature, unknown_key…)
    ├── ConfigurationError this deployment's settings break a pack's contract (a policy
    │   │                  override): found when a client or worker starts
    │   └── MigrationError the store's database cannot be opened (bad URL, no driver, down)
    └── TemporalUnreachable no connection to Temporal at the configured address (no server
                           there, no such host, or TLS or credentials it refused)

Inside Temporal (``ApplicationError.type``; non-retryable unless noted)::

    UnknownDomain          an activity names a domain pack this worker does not serve
    NoPolicy               no policy version is active (or the one named is not stored)
    AlreadyResolved        a run started again under a request id whose outcome is recorded:
                           it reads nothing more and acts on nothing; that outcome stands
    ShadowRefused          a candidate's decision recorded from a run other than the one that
                           may decide it (by id), or over another run's
    ReviewRefused          an Update validator refused a review (code in details[0])
    FeedbackRefused        signed feedback its reporter cannot vouch for (code in details[0]):
                           nothing of it was kept
    InvalidDocument        a knowledge source cannot be read (no such folder, not allowed,
                           too large, not text): nothing of it was indexed
    InvalidToolCall        unknown tool or arguments that break its input model
    PermissionDenied       the decision did not grant the permission the tool needs
    NotSubjectsRecord      a read found a record of another subject: its data is not returned
    PreconditionFailed     before acting, the target showed the call cannot succeed
    UpstreamRejected       the business system answered 4xx to a tool call
    NotFound               a read tool: the business system has no such record (404)
    IdempotencyConflict    same Idempotency-Key, different parameters
    UpstreamMalformed      a 2xx whose body breaks its contract
    PostconditionFailed    after acting, the target's own record differs from the request
    UpstreamUnavailable    5xx, 408, 429 or a transport error: retryable, left to the retry policy
    ModelRejected          the model endpoint refused the request (4xx other than 429)
    CircuitOpen            the model endpoint failed too often lately: not called
    ModelUnavailable       5xx, timeout, transport error or unreadable answer: retryable
    ModelRateLimited       429: retryable after the endpoint's Retry-After
    InProgress             another delivery holds this key (ledger claim, or the target
                           answered idempotency_in_progress): retryable
"""

from __future__ import annotations

UNKNOWN_DOMAIN = "UnknownDomain"
NO_POLICY = "NoPolicy"
ALREADY_RESOLVED = "AlreadyResolved"
SHADOW_REFUSED = "ShadowRefused"
REVIEW_REFUSED = "ReviewRefused"
FEEDBACK_REFUSED = "FeedbackRefused"
INVALID_DOCUMENT = "InvalidDocument"
INVALID_TOOL_CALL = "InvalidToolCall"
PERMISSION_DENIED = "PermissionDenied"
NOT_SUBJECTS_RECORD = "NotSubjectsRecord"
PRECONDITION_FAILED = "PreconditionFailed"
UPSTREAM_REJECTED = "UpstreamRejected"
NOT_FOUND = "NotFound"
IDEMPOTENCY_CONFLICT = "IdempotencyConflict"
UPSTREAM_MALFORMED = "UpstreamMalformed"
POSTCONDITION_FAILED = "PostconditionFailed"
UPSTREAM_UNAVAILABLE = "UpstreamUnavailable"
IN_PROGRESS = "InProgress"
MODEL_REJECTED = "ModelRejected"
CIRCUIT_OPEN = "CircuitOpen"
MODEL_UNAVAILABLE = "ModelUnavailable"
MODEL_RATE_LIMITED = "ModelRateLimited"


class TetherError(Exception):
    """Base of the errors the client API raises."""


class InvalidRequest(TetherError):
    """The request failed validation; ``errors`` lists each problem as 'field: message'."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid request: " + "; ".join(errors))
        self.errors = errors


class RequestConflict(TetherError):
    """The request id is taken by a different request, as an Idempotency-Key reused with
    other parameters is: refused, and nothing of the other request is shown."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request id {request_id!r} already names a different request; choose another id"
        )
        self.request_id = request_id


class ConfigurationError(TetherError):
    """Settings that no request could fix; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("configuration: " + "; ".join(problems))
        self.problems = problems


class TemporalUnreachable(TetherError):
    """No connection to Temporal at ``address`` (TETHER_TEMPORAL_ADDRESS); ``reason`` is the
    transport's or the server's own word for it (connection refused, a name not found, TLS or
    credentials refused)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(
            f"cannot connect to Temporal at {address} (TETHER_TEMPORAL_ADDRESS): {reason}"
        )
        self.address = address
        self.reason = reason


class MigrationError(ConfigurationError):
    """The database could not be opened or reached (bad URL, missing driver, down)."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem])


class ReviewRejected(TetherError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"review refused ({code}): {detail}")
        self.code = code
        self.detail = detail


class FeedbackRefused(TetherError):
    """Signed feedback its reporter cannot vouch for; nothing of it was kept."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"feedback refused ({code}): {detail}")
        self.code = code
        self.detail = detail
