"""Outcome recording: what was attempted, why it was allowed, what changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from tether import errors, metrics, names, protection
from tether.contracts import (
    LaterFeedback,
    Outcome,
    Reused,
    ReuseQuery,
    ShadowDecision,
    TallyHold,
)
from tether.datasets import carve
from tether.drift import alert, detect, post
from tether.evaluation import EvaluationInput, EvaluationReport, evaluate
from tether.incident import evaluation_events
from tether.overlay import TETHER, Overlay, OverlayQuery, OverlaySwitch
from tether.policystore import PolicyStore
from tether.shadow import DatasetCases, DatasetRef
from tether.signing import SignatureRefused, verify_feedback
from tether.store import Store


class RecordActivities:
    def __init__(self, store: Store, policies: PolicyStore | None = None) -> None:
        self._store = store
        self._policies = policies  # the directories signed feedback is verified by

    @activity.defn
    def record_outcome(self, outcome: Outcome) -> None:
        self._store.record_outcome(outcome)
        if activity.info().attempt == 1:  # count an outcome once, however often it is written
            metrics.record(outcome, activity.metric_meter())

    @activity.defn
    def reusable_proposal(self, query: ReuseQuery) -> Reused | None:
        """An earlier proposal this request may take instead of calling the model (a local
        activity: its answer is recorded in the history as a marker)."""
        found, why = self._store.reusable(query, datetime.now(UTC))
        result = "hit" if found else ("miss" if why in ("miss", "expired") else "stale")
        activity.metric_meter().create_counter(
            metrics.PROPOSAL_REUSE, "Proposal reuse lookups: hit, miss, stale (evidence changed)"
        ).add(1, {"domain": query.domain, "result": result})
        if found is None and why != "miss":
            activity.logger.info("proposal not reused: %s", why)
        return found

    @activity.defn
    def active_overlay(self, query: OverlayQuery) -> Overlay | None:
        """The conservative overlay that governs a decision in the query's domain and intent,
        if one is on (a local activity: its answer is recorded in the history as a marker)."""
        return self._store.overlay_for(query.domain, query.intent)

    @activity.defn
    def record_shadow(self, decision: ShadowDecision) -> None:
        """Kept only from the run that may decide it: the live run itself (a candidate on the
        live model) or the candidate's own run beside it, by their ids, and never over what
        another run of that id recorded. A run started by hand under any other id, or again
        under that one, cannot write a candidate's agreement (tether candidate status)."""
        info = activity.info()
        own_run = names.live_shadow_id(decision.candidate, decision.request_id)
        if info.workflow_id not in {names.workflow_id_for(decision.request_id), own_run}:
            raise ApplicationError(
                f"{info.workflow_id} may not record {decision.candidate}'s decision on "
                f"{decision.request_id}",
                type=errors.SHADOW_REFUSED,
                non_retryable=True,
            )
        if info.workflow_id == own_run:  # on the input its live run gave it, and no other
            given = self._store.expected_shadow(decision.request_id, decision.candidate)
            if given is None or given != decision.input_sha256:
                raise ApplicationError(
                    f"{info.workflow_id} did not run on the input the live run of "
                    f"{decision.request_id} gave {decision.candidate}"
                    + (" (the live run started none)" if given is None else ""),
                    type=errors.SHADOW_REFUSED,
                    non_retryable=True,
                )
        written = decision.model_copy(
            update={"recorded_by": f"{info.workflow_id}/{info.workflow_run_id}"}
        )
        if not self._store.record_shadow(written):
            raise ApplicationError(
                f"{decision.candidate}'s decision on {decision.request_id} was recorded by "
                "another run",
                type=errors.SHADOW_REFUSED,
                non_retryable=True,
            )

    @activity.defn
    def hold_tally(self, hold: TallyHold) -> int:
        """Hold this request's share of a tally on its subject; the others' total."""
        return self._store.hold_tally(hold, datetime.now(UTC))

    @activity.defn
    def evaluate_recent(self, inp: EvaluationInput) -> EvaluationReport:
        """Score the sampled share of the last ``since_hours`` of outcomes; keep the scores."""
        now = datetime.now(UTC)
        start = inp.start(now)
        window = self._store.outcomes_between(start, now, domain=inp.domain)
        scores, report = evaluate(window, self._store.heard, inp.config, now=now)
        self._store.record_scores(scores, now)
        baseline = self._store.outcomes_between(
            start - timedelta(days=inp.baseline_days), start, domain=inp.domain
        )
        report.drift = detect(baseline, window, inp.drift)
        meter = activity.metric_meter()
        domain = {"domain": inp.domain or "all"}
        # By window: the run's own (the slow burn), and the short one at its end (the fast).
        span = {"window": f"{inp.since_hours:g}h"}
        fast = inp.config.fast_window.total_seconds() / 3600
        short = {"window": f"{fast:g}h"} if fast < inp.since_hours else None
        for budget in report.budgets:
            rate = meter.create_gauge_float(
                "tether_quality_burn_rate", "Quality budget burn rate (1 = on budget)"
            )
            rate.set(budget.burn_rate, {"scorer": budget.scorer, **domain, **span})
            if short is not None and budget.fast_burn_rate is not None:
                rate.set(budget.fast_burn_rate, {"scorer": budget.scorer, **domain, **short})
        if inp.config.self_protection:
            report.overlays = self._protect(inp, window, scores, report, now)
        for metric in report.drift.metrics:
            meter.create_gauge_float(
                "tether_drift_psi", "Population stability index against the baseline window"
            ).set(metric.psi, {"signal": metric.name, **domain})
        meter.create_gauge("tether_drift_new_fingerprints", "Model builds new this window").set(
            len(report.drift.fingerprints_new), domain
        )
        alert(report.drift, inp.webhook)
        # The run's alarms, for the incident timeline; a retry writes them again, not twice.
        info = activity.info()
        source = f"evaluation {info.workflow_id}/{info.workflow_run_id}"
        self._store.replace_events(source, evaluation_events(report, inp, at=now, source=source))
        return report

    def _protect(
        self,
        inp: EvaluationInput,
        window: list[Outcome],
        scores: dict[str, dict[str, float]],
        report: EvaluationReport,
        now: datetime,
    ) -> list[OverlaySwitch]:
        """Switch the scopes burning fast to the conservative overlay and switch off those
        recovered (tether/protection.py decides); each switch to the webhook and the metrics.
        A retried run finds its overlays on already and sets none twice."""
        since = report.fast_since or now
        recent = [
            (o.domain, o.intent, scores[o.request_id])
            for o in window
            if o.request_id in scores and o.finished_at >= since
        ]
        active = self._store.overlays(inp.domain)
        plan = protection.plan(active, recent, inp.config, since=since, until=now)
        switches: list[OverlaySwitch] = []
        for target in plan.switch_on:
            made = self._store.set_overlay(
                target.domain,
                target.intent,
                by=TETHER,
                reason=target.reason,
                at=now,
                evidence=target.evidence,
            )
            if made is not None:
                switches.append(OverlaySwitch(on=True, overlay=made))
        self._store.overlays_burning(plan.burning, now)
        for clear in plan.switch_off:
            done = self._store.clear_overlay(clear.id, by=TETHER, reason=clear.reason, at=now)
            if done is not None:
                switches.append(OverlaySwitch(on=False, overlay=done))
        meter = activity.metric_meter()
        counted = meter.create_counter(
            metrics.OVERLAY_SWITCHES, "Switches of the conservative overlay, on and off"
        )
        for switch in switches:
            labels = metrics.overlay_labels(switch.overlay)
            counted.add(1, {**labels, "to": "on" if switch.on else "off"})
            if inp.webhook:
                body = {"alert": "overlay", **switch.model_dump(mode="json")}
                post(inp.webhook, body, what="overlay")
        # On: 1; off within the run's window (by this run or a person since): 0.
        shown = meter.create_gauge(
            metrics.OVERLAY_ACTIVE, "Conservative overlay on (1) or off (0), per domain and intent"
        )
        start = inp.start(now)
        known = self._store.overlays(inp.domain, active=False, cleared_since=start)
        on = {o.scope for o in known if o.active}
        for overlay in known:
            shown.set(int(overlay.scope in on), metrics.overlay_labels(overlay))
        return switches

    @activity.defn
    def carve_datasets(self, inp: EvaluationInput) -> dict[str, int]:
        """Refresh the failure-history datasets from the window; name -> current version."""
        now = datetime.now(UTC)
        start = inp.start(now)
        window = self._store.outcomes_between(start, now, domain=inp.domain)
        sets = carve(window, self._store.heard, slo_ms=inp.config.latency_slo_ms)
        return {name: self._store.save_dataset(name, cases, now) for name, cases in sets.items()}

    @activity.defn
    def load_dataset(self, ref: DatasetRef) -> DatasetCases:
        try:
            version, cases = self._store.dataset(ref.name, ref.version)
        except KeyError as err:
            raise ApplicationError(str(err), type="NoDataset", non_retryable=True) from None
        return DatasetCases(name=ref.name, version=version, cases=cases)

    @activity.defn
    def attach_feedback(self, item: LaterFeedback, arrived: datetime | None = None) -> str | None:
        """Attach ``item`` to its outcome; who vouched for it (None: unverified, kept and
        counted by nothing that learns). A signed item is verified against the active
        directory of its outcome's domain as of ``arrived`` (when its workflow started: an
        outage of the workers, or a retry, does not expire it): a bad signature, or a key
        not there, revoked or signed long before, is refused and nothing is kept."""
        vouched_by = None
        if item.signature is not None:
            vouched_by = self._vouched(item, arrived or activity.info().scheduled_time)
        if not self._store.attach_feedback(item, datetime.now(UTC), vouched_by=vouched_by):
            raise self._unknown(item)
        return vouched_by

    def _vouched(self, item: LaterFeedback, arrived: datetime) -> str:
        outcome = self._store.outcome(item.request_id)
        if outcome is None:
            raise self._unknown(item)
        active = self._policies.active(outcome.domain) if self._policies else None
        if active is None:
            raise _refused("no_directory", f"no {outcome.domain} policy is active to vouch by")
        try:
            return verify_feedback(item, active.policy, arrived)
        except SignatureRefused as refused:
            raise _refused(refused.code, refused.detail) from None

    @staticmethod
    def _unknown(item: LaterFeedback) -> ApplicationError:
        return ApplicationError(
            f"no outcome for request {item.request_id}", type="UnknownRequest", non_retryable=True
        )


def _refused(code: str, detail: str) -> ApplicationError:
    return ApplicationError(
        f"{code}: {detail}", code, type=errors.FEEDBACK_REFUSED, non_retryable=True
    )
