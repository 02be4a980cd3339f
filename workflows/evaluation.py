"""LiveEvaluationWorkflow: score sampled recent outcomes (run on a Temporal Schedule), raise
the quality budgets that burn too fast, and say which scopes it switched to the conservative
overlay or back."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from tether import names
    from tether.activities.records import RecordActivities
    from tether.evaluation import EvaluationInput, EvaluationReport


@workflow.defn(name=names.LIVE_EVALUATION)
class LiveEvaluationWorkflow:
    @workflow.run
    async def run(self, inp: EvaluationInput) -> EvaluationReport:
        report = await workflow.execute_activity_method(
            RecordActivities.evaluate_recent,
            inp,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        report.datasets = await workflow.execute_activity_method(
            RecordActivities.carve_datasets,
            inp,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        for budget in report.budgets:
            if budget.fired:  # the alert: in the workflow's log and the activity's metric
                workflow.logger.warning(
                    "quality budget %s burning at %.1fx (good %.1f%% < target %.1f%%), "
                    "%sx over the last part%s",
                    budget.scorer,
                    budget.burn_rate,
                    budget.good_share * 100,
                    budget.target * 100,
                    "-" if budget.fast_burn_rate is None else budget.fast_burn_rate,
                    " (fast burn)" if budget.fast_fired else "",
                )
        for switch in report.overlays:  # each also to the webhook and the metrics (activity)
            overlay = switch.overlay
            if switch.on:
                workflow.logger.warning(
                    "conservative overlay on for %s: %s", overlay.scope, overlay.reason
                )
            else:
                workflow.logger.warning(
                    "conservative overlay off for %s: %s", overlay.scope, overlay.clear_reason
                )
        return report
