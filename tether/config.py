"""Settings: every address, path, timeout, retry and threshold, with a default.

Process-level settings come from the environment (prefix ``TETHER_``). Policy (thresholds,
tiers, the approver directory) is the workers': versioned in the store (tether/policystore.py),
pinned by each workflow at its start through an activity, so its history records exactly which
version decided it (with the content hash) and replays with it. A client never sends policy.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.common import RetryPolicy

from tether.names import MODEL_QUEUE, RESOLUTION_QUEUE
from tether.text import hidden


def _seconds(value: object) -> object:
    """A duration in a setting: plain seconds ("90", "2.5") as well as ISO 8601 ("PT90S")."""
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a duration is not negative")
    return value


def _positive(value: timedelta) -> timedelta:
    # Temporal reads a zero timeout as none given: an activity with no other limit is then
    # refused at the workflow's task, which fails again on every retry (the run is stuck).
    if value <= timedelta(0):
        raise ValueError("an activity's only time limit is more than 0 (0 would be none)")
    return value


# Never negative: Temporal refuses a negative timeout in the workflow's task, and a run that
# schedules one is stuck retrying that task (tests/unit/test_settings.py).
Duration = Annotated[timedelta, BeforeValidator(_seconds), AfterValidator(_not_negative)]
# An activity's start-to-close, its only limit: more than 0. A limit beside it (schedule-to-
# start, schedule-to-close) is a Duration, where 0 is Temporal's "no limit".
Timeout = Annotated[Duration, AfterValidator(_positive)]


class Retry(BaseModel):
    """A retry policy with a name, instead of numbers inline in workflow code."""

    # Temporal's own rules (RetryPolicy): checked here, where a bad setting is read, and not
    # where a workflow first schedules an activity with it.
    initial: Duration = timedelta(milliseconds=200)
    backoff: float = Field(default=2.0, ge=1, allow_inf_nan=False)
    maximum_interval: Duration = timedelta(seconds=10)  # 0: Temporal's, 100 times initial
    maximum_attempts: int = Field(default=5, ge=0)  # 0: no limit

    @model_validator(mode="after")
    def _maximum_not_below_initial(self) -> Retry:
        if self.maximum_interval and self.maximum_interval < self.initial:
            raise ValueError(
                f"maximum_interval ({self.maximum_interval}) is less than initial ({self.initial})"
            )
        return self

    def policy(self, *, non_retryable: list[str] | None = None) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=self.initial,
            backoff_coefficient=self.backoff,
            maximum_interval=self.maximum_interval,
            maximum_attempts=self.maximum_attempts,
            non_retryable_error_types=non_retryable,
        )


class Timeouts(BaseModel):
    """Activity timeouts and retries used by ResolutionWorkflow."""

    retrieval: Timeout = timedelta(seconds=30)
    # How long a proposal waits for a model worker before the workflow asks whether any worker
    # polls the model queue: if one does, the queue is busy and the request waits in line (up
    # to model_queue_patience); if none does, the model counts as down. A minute: a worker
    # that crashes and comes back within it costs nobody a degraded answer.
    model_schedule_to_start: Duration = timedelta(seconds=60)
    model_queue_patience: Duration = timedelta(minutes=30)
    model_start_to_close: Timeout = timedelta(seconds=60)
    # A crashed worker costs an attempt, not a verdict on the model: several attempts, bounded
    # in time by model_budget, before the workflow falls back to retrieval-only.
    model_retry: Retry = Retry(maximum_attempts=6)
    model_budget: Duration = timedelta(minutes=3)
    verification: Timeout = timedelta(seconds=30)
    tool: Timeout = timedelta(seconds=15)
    # Attempts are not counted (a target answering "in progress" is not failing); the step's
    # time is: past tool_budget the effect is reconciled by key and the plan compensated.
    tool_retry: Retry = Retry(maximum_attempts=0)
    tool_budget: Duration = timedelta(minutes=2)
    # Compensations and reconciliation never give up: money may have moved.
    compensation_retry: Retry = Retry(maximum_attempts=0, maximum_interval=timedelta(minutes=1))
    record: Timeout = timedelta(seconds=15)
    # An outcome must never be lost: keep trying (0 = no limit); a stuck record shows in the UI.
    record_retry: Retry = Retry(maximum_attempts=0, maximum_interval=timedelta(minutes=1))
    default_retry: Retry = Retry(maximum_attempts=8)

    def problems(self) -> list[str]:
        """What lets the outcome's record or a compensation stop trying (an effect with no
        record, or not undone), or gives the record less than a second a try."""
        found = [
            f"{name}.maximum_attempts must be 0 (no limit): it never gives up"
            for name in ("record_retry", "compensation_retry")
            if getattr(self, name).maximum_attempts != 0
        ]
        if self.record < timedelta(seconds=1):
            found.append(f"record ({self.record}) must be at least 1 second")
        return found

    def kept_going(self) -> Timeouts:
        """These timeouts with none of ``problems()``: what a workflow runs by, whoever sent
        them (a request decoded from before the rule decodes still, held to it)."""
        if not self.problems():
            return self
        return self.model_copy(
            update={
                "record": max(self.record, timedelta(seconds=1)),
                "record_retry": self.record_retry.model_copy(update={"maximum_attempts": 0}),
                "compensation_retry": self.compensation_retry.model_copy(
                    update={"maximum_attempts": 0}
                ),
            }
        )

    @model_validator(mode="before")
    @classmethod
    def _partial_retry_over_its_default(cls, data: Any) -> Any:
        """TETHER_TIMEOUTS__RECORD_RETRY__BACKOFF=3 changes that one field of record_retry:
        the others stay record_retry's defaults (no limit on attempts), not a bare Retry's
        (five attempts: an outcome given up on)."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given, default = data.get(name), field.default
            if isinstance(given, dict) and isinstance(default, Retry):
                merged[name] = {**default.model_dump(), **given}
        return merged


class ApprovalTier(BaseModel):
    """One rung of the escalation ladder: who decides, and how long they have. What a tier
    may approve is the domain pack's to say (its rules escalate to a tier by name)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    role: str
    sla: Duration


def key_id(public_key: str) -> str:
    """An Ed25519 public key's id: derived from the key, so it cannot be claimed for another."""
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


class ApproverKey(BaseModel):
    """One of an approver's public keys (base64 of the raw 32 bytes). Rotation adds a key;
    a revoked key signs nothing from ``revoked_at`` on."""

    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$")
    revoked_at: AwareDatetime | None = None  # compared with workflow time: a zone is required

    @property
    def id(self) -> str:
        return key_id(self.public_key)


class Approver(BaseModel):
    """An entry of the approver directory: the roles a person holds and the keys that sign
    for them. A bare list of roles is read as an entry with no keys (it can sign nothing)."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(min_length=1)
    keys: list[ApproverKey] = []
    # The ids this person also has as a requester or subject (an employee id beside the name
    # they approve under): they never approve a request of their own under either.
    subjects: list[str] = []


class IntentThresholds(BaseModel):
    """One intent's own confidence and grounding thresholds (``tether calibrate`` proposes
    them); a threshold left out is the policy's."""

    model_config = ConfigDict(extra="forbid")

    min_auto_confidence: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    min_grounding: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)


class PolicyConfig(BaseModel):
    """Deterministic policy for one domain. Nothing a user, document or model says can change
    it. The core's gates read the thresholds; the pack's rules read ``rules`` (validated by
    the pack's own settings model)."""

    # A setting misspelt (min_groundig) is refused: dropped, it would leave the threshold an
    # operator meant to tighten where it was, and `tether policy diff` would show nothing.
    model_config = ConfigDict(extra="forbid")

    # Scores are shares in [0, 1]: infinity or NaN would parse, then be written as null in
    # the pinned policy and never parse again (tests/unit/test_fuzz_trust.py found it).
    version: str = Field(min_length=1, max_length=64)
    min_auto_confidence: float = Field(default=0.55, ge=0, le=1, allow_inf_nan=False)
    min_grounding: float = Field(default=0.75, ge=0, le=1, allow_inf_nan=False)
    # Per intent (one of the pack's), thresholds in place of the two above; an intent not
    # named here has those. Only these two gates move: every rule and permission still holds.
    intent_thresholds: dict[str, IntentThresholds] = {}
    tiers: list[ApprovalTier] = Field(min_length=1)
    # The approver directory: approver id -> roles and public keys. Pinned with the policy at
    # the workflow's start, so the Update validator verifies signatures deterministically.
    # Empty (the packs ship none): every request that needs a person is refused, saying so.
    approvers: dict[str, Approver] = {}
    # A signed review counts this long after it was signed (and never before it).
    signature_ttl: Duration = timedelta(minutes=15)
    max_repairs: int = 2
    # Permissions the system may exercise without a person; any other needs an approval.
    autonomous_permissions: list[str] = []
    rules: dict[str, Any] = Field(default={}, description="the pack's rule settings")
    # Per tally (a pack's DomainPack.tallies, by name): the window a subject's requests are
    # totalled over; a tally without a window is not counted.
    tally_windows: dict[str, Duration] = {}
    # How long a proposal may be reused by a matching request whose cited evidence has not
    # changed (tether/reuse.py); None: never, every request asks the model.
    proposal_reuse: Duration | None = None
    # How long the conservative overlays read with the policy's pin stand for the request's
    # decision (tether/overlay.py); a decision later than this after the pin reads them again.
    # Zero: always read at the decision.
    overlay_pinned_for: Duration = Field(default=timedelta(seconds=30), ge=timedelta(0))

    @field_validator("version")
    @classmethod
    def _a_plain_name(cls, value: str) -> str:
        if hidden(value):
            raise ValueError("a version name holds no control or invisible characters")
        return value

    @field_validator("approvers", mode="before")
    @classmethod
    def _roles_alone(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"roles": v} if isinstance(v, list) else v for k, v in value.items()}
        return value

    def key(self, kid: str) -> tuple[str, ApproverKey] | None:
        """The approver a key id signs for, and the key; None for a key not in the directory."""
        for approver, entry in self.approvers.items():
            for k in entry.keys:
                if k.id == kid:
                    return approver, k
        return None

    def min_confidence_for(self, intent: str | None) -> float:
        """The confidence a proposal of ``intent`` needs to be decided without a person."""
        own = self.intent_thresholds.get(intent) if intent is not None else None
        given = own.min_auto_confidence if own is not None else None
        return self.min_auto_confidence if given is None else given

    def min_grounding_for(self, intent: str | None) -> float:
        """The grounding a proposal of ``intent`` needs to be decided without a person."""
        own = self.intent_thresholds.get(intent) if intent is not None else None
        given = own.min_grounding if own is not None else None
        return self.min_grounding if given is None else given

    def tier_index(self, name: str) -> int | None:
        return next((i for i, t in enumerate(self.tiers) if t.name == name), None)

    def reach(self, approver: str) -> int | None:
        """The highest tier ``approver`` may decide (a tier's role decides it and every tier
        below it), or None when they hold no tier's role."""
        entry = self.approvers.get(approver)
        held = [i for i, t in enumerate(self.tiers) if entry and t.role in entry.roles]
        return max(held) if held else None

    def can_decide(self, tier: int) -> bool:
        """Someone in the directory holds a role that decides ``tier`` and a key not revoked."""
        return any(
            (reach := self.reach(name)) is not None
            and reach >= tier
            and any(k.revoked_at is None for k in entry.keys)
            for name, entry in self.approvers.items()
        )

    def merged(self, overrides: dict[str, Any]) -> PolicyConfig:
        """This policy with ``overrides`` applied: each field replaced whole (an approver
        directory given is the whole directory), except ``rules``, where each setting given
        replaces that setting."""
        base = self.model_dump()
        given = overrides.get("rules", {})
        # Not a mapping (a file saying `rules: null`): left as given, for validation to name.
        rules = {**base["rules"], **given} if isinstance(given, dict) else given
        return PolicyConfig.model_validate({**base, **overrides, "rules": rules})


class RetrievalConfig(BaseModel):
    """Query-time freshness, dedup and budget rules."""

    top_k: int = Field(default=8, ge=1)
    min_score: float = Field(default=0.25, ge=-1, le=1, allow_inf_nan=False)  # cosine
    duplicate_similarity: float = Field(default=0.95, ge=0, le=1, allow_inf_nan=False)
    max_passages: int = Field(default=4, ge=1)
    max_chars: int = Field(default=3_000, ge=1)
    max_index_age: Duration = timedelta(days=7)
    # Stale passages are dropped; with keep_stale they are kept, flagged, and policy allows
    # no autonomous write that cites one.
    keep_stale: bool = False
    # Judge freshness as of this instant instead of now: for tests and shadow replays.
    freshness_as_of: datetime | None = None
    # The hosts an ingest may fetch from ("docs.example.com" on any port, "host:port" or
    # "[::1]:port" on that one), redirects included. Empty by default: the worker fetches what
    # its operator allowed, not whatever a caller names (a cloud's metadata address, an admin
    # page inside the network).
    source_hosts: list[str] = []
    # The folders an ingest may read (and what is under them), on the worker's host. None:
    # any folder the worker can read, for one person's machine; a deployment names its own.
    source_folders: list[Path] | None = None

    @field_validator("source_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            host_and_port(entry)  # refused here, at start, not at every fetch
        return value


_HOST = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::(?P<port>\d{1,5}))?$"
)


def host_and_port(entry: str) -> tuple[str, int | None]:
    """An allowed source host as (host, port or None for any): ``name``, ``name:port``,
    ``[v6]`` or ``[v6]:port``; ValueError for anything else."""
    match = _HOST.match(entry)
    port = int(match["port"]) if match and match["port"] else None
    if match is None or (port is not None and not 0 < port < 65536):
        raise ValueError(f"{entry!r} is not a host name, host:port or [IPv6]:port")
    return (match["v6"] or match["name"]).lower().rstrip("."), port


class LLMConfig(BaseModel):
    """Which model proposes, and how its endpoint is protected. ``local`` needs nothing else;
    ``openai`` speaks chat completions to any OpenAI-compatible server (OpenAI, vLLM,
    Ollama, llama.cpp) by configuration alone."""

    provider: Literal["local", "openai"] = "local"
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = None
    # json_schema: the Proposal schema is enforced by the server (OpenAI, vLLM, Ollama,
    # llama.cpp); json_object: JSON only; tools: asked for as a call of a "propose" function
    # with the schema as its parameters; none: the prompt alone. Answers come back as JSON
    # content or as a function call, whichever the server sends; Tether validates either way.
    response_format: Literal["json_schema", "json_object", "tools", "none"] = "json_schema"
    temperature: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    max_tokens: int = Field(default=1_000, ge=1)
    # An answer longer than this is refused unread (ModelUnavailable): at 1,000 tokens a
    # completion is a few KB; a server that sends megabytes is broken or hostile.
    max_response_bytes: int = Field(default=1_000_000, ge=1_000)
    # Per phase, in seconds: a slow first byte and a dead socket are different failures.
    connect_timeout: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    read_timeout: float = Field(default=50.0, gt=0, allow_inf_nan=False)
    write_timeout: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    pool_timeout: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    # Protection of the endpoint: at most this many proposals per second leave the model task
    # queue (Temporal enforces it across all model workers), and this many at once per worker.
    rate_limit_per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_concurrent: int = Field(default=4, ge=1)
    # The circuit opens after this many consecutive failures and lets one trial through after
    # breaker_reset; while open, proposals fail fast and workflows answer retrieval-only.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset: Duration = timedelta(seconds=30)


class ConsoleConfig(BaseModel):
    """The web operator console. Identity comes from a header set by an authenticating proxy
    in front of it, or from a token an operator signs in with (token -> approver id)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8300, ge=1, le=65535)
    identity_header: str | None = None  # e.g. X-Forwarded-User, only behind such a proxy
    # The header is believed only from these peer addresses (the proxy's); from others, ignored.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    tokens: dict[str, str] = Field(default_factory=dict, repr=False)  # token -> approver id
    # The operators' signing keys (tether keys new), held by the console: it signs a review
    # for the operator it authenticated. Whoever controls this directory can approve as them.
    keyring: Path | None = None
    # Signs sessions and forms; a random one per process when unset, which only one process
    # may use (another replica could not read its sessions): see ``processes``.
    secret: SecretStr | None = None
    processes: int = Field(default=1, ge=1)  # console processes behind one address
    session_hours: float = Field(default=8, gt=0)

    @model_validator(mode="after")
    def _replicas_share_a_secret(self) -> ConsoleConfig:
        if self.processes > 1 and self.secret is None:
            raise ValueError(
                "console.processes > 1 needs console.secret (TETHER_CONSOLE__SECRET): each "
                "process would sign sessions and forms with its own random one"
            )
        return self


DEFAULT_CODEC_PORT = 8234  # beside the UI's 8233; clear of 7233 (Temporal) and 8300 (console)


class CodecServerConfig(BaseModel):
    """Where the codec server listens and whom it serves (the module docstring says why)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_CODEC_PORT, ge=1, le=65535)
    token: SecretStr | None = None
    loopback_without_token: bool = False  # the local dev stack only
    origins: list[str] = []  # browsers' origins (the UI's); empty: the settings' UI
    namespaces: list[str] = []  # empty: the settings' namespace


class TemporalTLS(BaseModel):
    """TLS to the Temporal frontend (TETHER_TEMPORAL_TLS__*): a private CA's certificate, and a
    client certificate and key for mTLS. Files, so secrets stay out of the environment."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False  # on with the system's roots even when no file is named
    server_ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None  # the name the server's certificate carries, if not the host

    @model_validator(mode="after")
    def _a_cert_needs_its_key(self) -> TemporalTLS:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("mTLS needs client_cert and client_key together")
        return self

    @property
    def wanted(self) -> bool:
        return self.enabled or any(
            f is not None for f in (self.server_ca, self.client_cert, self.server_name)
        )


class EncryptionConfig(BaseModel):
    """History encryption (tether/codec.py): key id -> base64 of a 32-byte AES key. The
    primary (default: the last id, sorted) encrypts; every key decrypts. No keys: off."""

    model_config = ConfigDict(extra="forbid")

    keys: dict[str, SecretStr] = Field(default_factory=dict)
    primary: str | None = None

    @model_validator(mode="after")
    def _usable(self) -> EncryptionConfig:
        for kid, key in self.keys.items():
            try:
                size = len(base64.b64decode(key.get_secret_value(), validate=True))
            except ValueError:
                size = -1
            if size != 32:
                raise ValueError(f"encryption key {kid!r} is not base64 of 32 bytes")
        if self.primary is not None and self.primary not in self.keys:
            raise ValueError(f"primary key {self.primary!r} is not among {sorted(self.keys)}")
        return self


class Settings(BaseSettings):
    """Process settings, read from TETHER_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", env_nested_delimiter="__")

    data_dir: Path = Path(".tether")
    # The domain packs this process serves: entry-point names (the ``tether.domains`` group,
    # where this distribution registers its reference pack) or ``module:ATTRIBUTE`` paths.
    # None: every installed pack.
    domains: list[str] | None = None
    # The pack a request names when it names none (else: the only pack, if there is one).
    default_domain: str | None = None
    # Per domain, fields merged over the pack's own policy (thresholds, tiers, approvers): what
    # a worker registers as a version at its start (activated if the domain has none active).
    policies: dict[str, dict[str, Any]] = {}
    # Approvers' key files (tether keys new): the client and CLI sign a review with the key
    # of the approver it names.
    keyring: Path | None = None
    # Business systems by name (each pack declares its own and their default URLs).
    systems: dict[str, str] = {}
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: TemporalTLS = TemporalTLS()
    encryption: EncryptionConfig = EncryptionConfig()
    # The codec server (tether codec-server; tether up runs one when encryption is on).
    codec_server: CodecServerConfig = CodecServerConfig()
    # Sent as "Authorization: Bearer ..." (Temporal Cloud); TLS is then on unless disabled.
    temporal_api_key: SecretStr | None = None
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    task_queue: str = RESOLUTION_QUEUE
    model_queue: str = MODEL_QUEUE
    # Model queues (fnmatch patterns) a caller may name for its requests besides the workers'
    # own model_queue (a fault drill, a provider of its own); any other is not honoured: the
    # workers' model_queue answers. Empty: only theirs.
    model_queues: list[str] = []
    # CPU-heavy activities (retrieval, ingest, verification) on a task queue of their own,
    # served by `tether worker --role compute`, so that they never hold the GIL of a process
    # running workflow tasks. Unset: the workflow queue serves them (one process does all).
    compute_queue: str | None = None
    # Live candidates' shadow runs on a task queue of their own, served by `tether worker
    # --role shadow`, so that a candidate's workflow tasks never share a process (or its GIL)
    # with live ones. Unset: the workflow queue serves them too.
    shadow_queue: str | None = None
    # `tether up` schedules the live evaluation this often (every domain, the last 24 h, a
    # fifth of them scored): what raises the quality alarms and switches the conservative
    # overlay on and off by itself. 0: no schedule (`tether eval run --every` makes one).
    evaluation_every: Duration | None = timedelta(minutes=5)
    grounding_similarity: float = Field(default=0.7, ge=0, le=1, allow_inf_nan=False)
    store_url: str | None = None  # default: SQLite file in data_dir
    # The embedded vector store: Qdrant Edge in-process (chosen by bench/vector_backends.py),
    # or qdrant-client's local mode. qdrant_url, when set, wins over both.
    vector_backend: Literal["edge", "local"] = "edge"
    qdrant_path: Path | None = None  # default: data_dir / "edge" (or "qdrant" for local)
    qdrant_url: str | None = None  # a Qdrant server instead of local mode
    # Each domain's knowledge is a collection of its own: <prefix>_<domain>.
    collection_prefix: str = "tether"
    embedding_batch_size: int = Field(default=32, ge=1)
    # onnx: the same vectors as torch; a request's embedding in half the time, ingest about
    # even (bench/embedding_backends.py chooses on the machine it runs on).
    embedding_backend: Literal["torch", "onnx"] = "onnx"
    activity_threads: int = Field(default=8, ge=1)
    # Workflows a worker keeps in memory between their tasks (Temporal's sticky cache); one
    # evicted is replayed from its history when it next has work. Bounds what thousands of
    # requests waiting for a person cost a worker (bench/parked.py).
    max_cached_workflows: int = Field(default=600, ge=0)
    # Workflow tasks one worker process runs at a time. More only queue inside the process,
    # where the server cannot see them wait: under a burst they outlive their timeouts
    # (bench/burst.py); fewer leave them in the server's queue until a slot frees.
    workflow_task_slots: int = Field(default=10, ge=2)
    # How long a workflow's next task waits for the worker that ran its last one (Temporal's
    # sticky queue, where its state is cached) before it moves to the shared queue, where any
    # worker takes it and replays its history. A busy worker's tasks wait in line; a dead
    # worker's wait this long before another takes them (bench/burst.py, bench/recovery.py).
    sticky_queue_timeout: Duration = timedelta(seconds=10)
    # Serve Prometheus metrics (Temporal's and Tether's) on host:port, e.g. 127.0.0.1:9464.
    metrics_address: str | None = None
    # Where drift alerts are POSTed, besides the log and the metrics.
    alert_webhook: str | None = None
    # OpenTelemetry spans across client, workflows and activities; exported by OTLP/HTTP to
    # OTEL_EXPORTER_OTLP_ENDPOINT when that is set, else to whatever provider is installed.
    tracing: bool = False
    retrieval: RetrievalConfig = RetrievalConfig()
    timeouts: Timeouts = Timeouts()
    llm: LLMConfig = LLMConfig()
    console: ConsoleConfig = ConsoleConfig()

    @field_validator("data_dir")
    @classmethod
    def _a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError("not a folder (a file is there)")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _socket_address(cls, value: str | None) -> str | None:
        """What the metrics server can bind: an IP address and a port, never a host name."""
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        try:
            address = ipaddress.ip_address(host[1:-1] if bracketed else host)
        except ValueError:
            address = None
        shaped = address is not None and bracketed == (address.version == 6)
        if not (shaped and port.isascii() and port.isdigit()):
            raise ValueError("an IP address and a port: 127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464")
        if int(port) > 65535:
            raise ValueError(f"port {port} is past 65535")
        return value

    @field_validator("domains")
    @classmethod
    def _each_once(cls, value: list[str] | None) -> list[str] | None:
        """A pack named twice is served once (not listed, loaded and registered twice)."""
        return list(dict.fromkeys(value)) if value is not None else None

    @field_validator("evaluation_every")
    @classmethod
    def _zero_is_none(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("a schedule's interval is not negative (0: no schedule)")
        return value or None

    @model_validator(mode="after")
    def _record_and_compensations_never_give_up(self) -> Settings:
        problems = self.timeouts.problems()
        if problems:
            raise ValueError("timeouts: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _model_calls_end_before_temporal_gives_up(self) -> Settings:
        """A hanging endpoint must time out in the provider (and count against the circuit),
        not be cancelled by Temporal first (which counts for nothing)."""
        llm, limit = self.llm, self.timeouts.model_start_to_close.total_seconds()
        if llm.provider == "openai" and llm.connect_timeout + llm.read_timeout >= limit:
            raise ValueError(
                f"llm connect_timeout + read_timeout ({llm.connect_timeout + llm.read_timeout} s)"
                f" must be below timeouts.model_start_to_close ({limit} s)"
            )
        return self

    @property
    def ui_url(self) -> str:
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.data_dir / 'tether.db').resolve()}"

    def resolved_qdrant_path(self, domain: str) -> Path:
        default = "edge" if self.vector_backend == "edge" else "qdrant"
        return (self.qdrant_path or self.data_dir / default) / domain

    def collection(self, domain: str) -> str:
        return f"{self.collection_prefix}_{domain}"


# Settings whose values are never repeated in an error (a key, a token, a password).
SECRET_PARTS = frozenset({"keys", "api_key", "temporal_api_key", "token", "tokens", "secret"})


def settings_problems(error: ValidationError) -> list[str]:
    """Each invalid setting as one line naming the environment variable that sets it, and the
    value given, unless it is a secret or a group of settings (which may hold one)."""
    lines = []
    for problem in error.errors():
        where = [str(part) for part in problem["loc"] if not isinstance(part, int)]
        variable = "TETHER_" + "__".join(where).upper() if where else "settings"
        given = problem.get("input")
        if isinstance(given, dict | list) or SECRET_PARTS & {w.lower() for w in where}:
            lines.append(f"{variable}: {problem['msg']}")
            continue
        shown = repr(given)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        lines.append(f"{variable}: {problem['msg']} (got {shown})")
    return lines


def setting_unreadable(error: Exception) -> str:
    """pydantic-settings' 'error parsing value for field "policies" from source …' (a JSON
    value that is not JSON) as one line naming the variable."""
    found = re.search(r'field "([^"]+)"', str(error))
    if found is None:
        return f"settings: {error}"
    return f"TETHER_{found.group(1).upper()}: not valid JSON"
