"""Names that cross Temporal: task queues, workflow types, their messages, and ids.

Clients start and message workflows by these names, so the client library needs no workflow
code (and workflows need no client): both sides import this module.
"""

from __future__ import annotations

# Task queues.
RESOLUTION_QUEUE = "tether-resolution"
MODEL_QUEUE = "tether-model"

# Workflow types.
RESOLUTION = "ResolutionWorkflow"
KNOWLEDGE_INGEST = "KnowledgeIngestWorkflow"
KNOWLEDGE_REFRESH = "KnowledgeRefreshWorkflow"
FEEDBACK = "FeedbackWorkflow"
LIVE_EVALUATION = "LiveEvaluationWorkflow"
SHADOW_EVALUATION = "ShadowEvaluationWorkflow"
LIVE_SHADOW = "LiveShadowWorkflow"  # a live candidate's run beside one request
# Workflows that decide without acting: the worker refuses them any tool (tether/shadowguard.py).
SHADOWS = frozenset({SHADOW_EVALUATION, LIVE_SHADOW})

# ResolutionWorkflow's messages.
STATUS = "status"  # query
REVIEW = "review"  # update (validator: identity, role, version)
REVIEW_SIGNAL = "review_signal"  # the same, for tools that can only signal
EDIT = "edit"  # update
EDIT_SIGNAL = "edit_signal"

# A waiting request's status as it entered approval, in its memo: `pending()` lists from
# visibility, without asking each workflow.
PENDING_MEMO = "tether_pending"

# Model activities (the model task queue).
PROPOSE = "propose_resolution"
RECONCILE = "reconcile_tool"


def workflow_id_for(request_id: str) -> str:
    """Deterministic id: starting the same request twice runs it once."""
    return f"resolution-{request_id}"


def live_shadow_id(candidate: str, request_id: str) -> str:
    """The one run a live candidate may decide a request in (started beside the live run)."""
    return f"shadow-{candidate}-{workflow_id_for(request_id)}"


def tool_activity(domain: str, tool: str) -> str:
    """Each pack's tools run as activities of their own, named ``<domain>.<tool>``: two packs
    may both have a tool called ``notify`` on one worker."""
    return f"{domain}.{tool}"
