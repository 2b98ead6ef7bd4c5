"""The LLM cost & feedback dashboard (uid llm-cost): spend by tenant and model against the daily budgets,
cost per answer, tokens per call on the OpenTelemetry GenAI metrics. Words: texts/llm-cost.md."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from monitoring.contract import alert

from .board import Board
from .panels import RI, quantile_expr, rate_by, stat, table, target
from .panels import timeseries as ts

PanelList = list[Builder[dm.Panel]]
BOARD = Board("llm-cost")
# The budget alert's own projection, so that the panel shows what the alert evaluates.
BUDGET_WINDOW = alert("LLMBudgetBurn").params["window"].get()


@BOARD.row("Spend and budgets")
def spend() -> PanelList:
    per_hour = target(
        f"sum by (tenant, model) (rate(llm_cost_dollars_total[{RI}])) * 3600", "{{tenant}} {{model}}"
    )
    projected = target(
        f"predict_linear(service_tenant:llm_cost_dollars:increase1d[{BUDGET_WINDOW}], 86400)"
        " / on (service, tenant) max by (service, tenant) (llm_tenant_daily_budget_dollars)",
        "{{tenant}}",
    )
    day = target("sum by (tenant) (service_tenant:llm_cost_dollars:increase1d)", "{{tenant}} last 24 h")
    in_range = target("sum(increase(llm_cost_dollars_total[$__range]))", "spend")
    budgets = target("max by (tenant) (llm_tenant_daily_budget_dollars)", "{{tenant}}")
    return [
        ts("Spend per hour by tenant and model", [per_hour], unit="currencyUSD", stack=True).span(8),
        ts("Projected daily spend / budget", [projected], unit="percentunit", minimum=0).span(8),
        ts(
            "Cost per request",
            [target("service:llm_cost_per_request_dollars:ratio_rate1m", "per answer")],
            unit="currencyUSD",
        ).span(8),
        ts("Spend over the last day by tenant", [day], unit="currencyUSD").span(8),
        stat("Spend over the range", [in_range], unit="currencyUSD", decimals=4).span(4),
        table("Daily budget by tenant", [budgets]).span(12),
    ]


@BOARD.row("Tokens (OpenTelemetry GenAI metrics)")
def tokens() -> PanelList:
    per_call = target("service:gen_ai_client_token_usage_input:mean_rate1m", "input tokens per call")
    by_type = rate_by("gen_ai_client_token_usage_sum", "gen_ai_token_type, gen_ai_provider_name")
    output = " / ".join(
        f'sum by (service) (rate(gen_ai_client_token_usage_{part}{{gen_ai_token_type="output"}}[{RI}]))'
        for part in ("sum", "count")
    )
    call_p90 = quantile_expr(
        "gen_ai_client_operation_duration_seconds", 0.9, by="gen_ai_provider_name, error_type"
    )
    calls = rate_by("gen_ai_client_operation_duration_seconds_count", "gen_ai_provider_name, error_type")
    return [
        ts("Input tokens per call", [per_call, target(output, "output tokens per call", "B")]).span(6),
        ts("Input vs output tokens per second", [by_type], stack=True).span(6),
        ts("LLM calls per second by outcome", [calls], unit="ops").span(6),
        ts(
            "LLM call duration p90", [target(call_p90, "{{gen_ai_provider_name}} {{error_type}}")], unit="s"
        ).span(6),
    ]


NEGATIVE_SHARE = (
    'sum(increase(llm_user_feedback_total{rating="down"}[15m])) / sum(increase(llm_user_feedback_total[15m]))'
)


@BOARD.row("User feedback")
def feedback() -> PanelList:
    votes = rate_by("llm_user_feedback_total", "rating, reason")
    replaced = target(f"sum(rate(llm_user_feedback_replaced_total[{RI}]))", "replaced votes", "B")
    kept = target("max(llm_answer_records)", "records kept")
    pruned = rate_by("llm_answer_records_pruned_total", "reason", "pruned: {{reason}}")
    failed = target(f"sum(rate(llm_answer_record_errors_total[{RI}]))", "not recorded", "B")
    judge = rate_by("llm_user_feedback_verdicts_total", "evaluator_verdict, user_rating")
    grounded = target("service:llm_groundedness_score:p50_rate1m", "median groundedness", "B")
    return [
        ts("Thumbs up/down per second", [votes, replaced], unit="ops").span(8),
        ts(
            "Negative feedback share", [target(NEGATIVE_SHARE, "down share"), grounded], unit="percentunit"
        ).span(8),
        ts("Judge vs users", [judge], unit="ops", stack=True).span(8),
        ts("Answer records kept", [kept]).span(12),
        ts("Answer records pruned or lost", [pruned, failed], unit="ops").span(12),
    ]


@BOARD.row("Eval gate (Pushgateway)")
def eval_gate() -> PanelList:
    scores = target("max by (eval_set, metric) (llm_eval_score)", "{{eval_set}} {{metric}}")
    base = target(
        "max by (eval_set, metric) (llm_eval_baseline_score)", "{{eval_set}} {{metric}} baseline", "B"
    )
    gap = target(
        "max by (eval_set, metric) (llm_eval_baseline_score) - on (eval_set, metric)"
        " max by (eval_set, metric) (llm_eval_score)",
        "{{eval_set}} {{metric}}",
    )
    age = target("time() - max by (eval_set) (llm_eval_last_run_timestamp_seconds)", "{{eval_set}}")
    passed = [
        target("max by (eval_set) (llm_eval_passed)", "{{eval_set}} passed"),
        target("max by (eval_set) (llm_eval_cases)", "{{eval_set}} cases", "B"),
    ]
    return [
        ts("Eval scores per run", [scores, base], unit="percentunit", minimum=0, maximum=1).span(8),
        ts("Eval score below baseline", [gap]).span(8),
        stat("Last eval run age", [age], unit="s").span(4),
        stat("Last eval run passed", passed, decimals=0).span(4),
    ]
