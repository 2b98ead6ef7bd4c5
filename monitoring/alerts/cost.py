"""LLM cost and feedback alerts: a tenant's spend projected past its daily budget, cost per answer, tokens
per call, and the users' negative votes."""

from __future__ import annotations

from monitoring.alerts.ml import MIN_RATE
from monitoring.contract import Alert, P

# The range of the budget projection (predict_linear's input) and of the rolling day it projects. Longer
# than the lab's 1m rate windows on purpose: a day's spend is the quantity, a few minutes its trend.
BUDGET_WINDOW = P("5m", production="1h")
# Every range the cost rules use besides 1m (tests/test_prometheus_config.py allows these).
BUDGET_WINDOWS = {"5m", "1h", "1d", "15m"}  # 15m: the negative-feedback share
# Longer than LLMBudgetBurn's `for`, which mutes these (family cost) when one spike trips all three.
COST_WARNING_FOR = P("45s", production="20m")

ALERTS = [
    Alert(
        name="LLMBudgetBurn",
        group="llm_cost",
        service="rag_api",
        family="cost",
        severity="critical",
        # The rolling day's spend (reset-safe increase[1d]) extrapolated a day ahead at its trend over the
        # window: in steady state the trend is flat and this is the daily spend; after a spike it is what the
        # day will cost if the spike goes on.
        expr=(
            "predict_linear(service_tenant:llm_cost_dollars:increase1d[{window}], 86400)\n"
            "/ on (service, tenant) max by (service, tenant) (llm_tenant_daily_budget_dollars)\n"
            "> {threshold}"
        ),
        # The ratio of projected spend to budget: 1 = the whole budget.
        params={"window": BUDGET_WINDOW, "threshold": P(1)},
        for_=P("30s", production="15m"),
        summary="Tenant {{ $labels.tenant }} will overspend its daily LLM budget on {{ $labels.service }}",
        description=(
            "At the trend of the last {window}, {{ $labels.tenant }}'s LLM spend over a day reaches "
            "{{ $value | humanizePercentage }} of its daily budget (llm_tenant_daily_budget_dollars)."
        ),
        dashboard="llm-cost",
        panel="Projected daily spend / budget",
        signal="`predict_linear` of the tenant's rolling-day spend (`llm_cost_dollars_total`) vs its budget",
        production_note="trend over `[1h]`",
        trigger="`cost-spike --tenant acme` (rag_api `token_inflation` fault, `factor` 20)",
        comment="each tenant's budget is a gauge of rag_api (RAG_TENANT_DAILY_BUDGETS), not a rule constant",
    ),
    Alert(
        name="LLMCostPerRequestHigh",
        group="llm_cost",
        service="rag_api",
        family="cost",
        severity="warning",
        expr=(
            "service:llm_cost_per_request_dollars:ratio_rate1m > {threshold}\n"
            'and on (service) sum by (service) (rate(rag_chat_requests_total{status="ok"}[1m])) > {min_rate}'
        ),
        # Lab: the offline generator's simulated price makes ~$0.0006 an answer; 0.005 is ~8x that.
        params={"threshold": P(0.005, production=0.02), "min_rate": MIN_RATE},
        for_=COST_WARNING_FOR,
        summary="Answers on {{ $labels.service }} cost more than ${threshold} each",
        description=(
            'LLM spend per answered /chat request is ${{ printf "%.4f" $value }} over the last minute '
            "(generation and judge, price table in the settings)."
        ),
        dashboard="llm-cost",
        panel="Cost per request",
        signal="`llm_cost_dollars_total` rate / answered `/chat` rate",
        production_note="over `[5m]`",
        trigger="`cost-spike` (rag_api `token_inflation` fault, `factor` ≥ 10)",
    ),
    Alert(
        name="LLMTokenUsageHigh",
        group="llm_cost",
        service="rag_api",
        family="cost",
        severity="warning",
        expr=(
            "service:gen_ai_client_token_usage_input:mean_rate1m > {threshold}\n"
            "and on (service) service:gen_ai_client_operations:rate1m > {min_rate}"
        ),
        # Lab: ~700 input tokens a call (system prompt + 3 chunks); top_k=10 stays under ~2500.
        params={"threshold": P(4000, production=8000), "min_rate": MIN_RATE},
        for_=COST_WARNING_FOR,
        summary="LLM calls on {{ $labels.service }} send more than {threshold} input tokens each",
        description=(
            "Mean input tokens per LLM call is {{ $value | humanize }} over the last minute "
            "(gen_ai_client_token_usage): prompts grew — a template change, stuffed context, a loop."
        ),
        dashboard="llm-cost",
        panel="Input tokens per call",
        signal='mean of `gen_ai_client_token_usage{gen_ai_token_type="input"}`',
        production_note="over `[5m]`",
        trigger="`cost-spike` (rag_api `token_inflation` fault, `factor` ≥ 10)",
    ),
    Alert(
        name="LLMNegativeFeedbackHigh",
        group="llm_feedback",
        service="rag_api",
        family="feedback",
        severity="warning",
        # Votes are rare next to requests: a 15-minute share, and only with enough votes to mean something.
        expr=(
            'sum by (service) (increase(llm_user_feedback_total{rating="down"}[15m]))\n'
            "/ sum by (service) (increase(llm_user_feedback_total[15m])) > {threshold}\n"
            "and on (service) sum by (service) (rate(llm_user_feedback_total[15m])) > {min_rate}"
        ),
        # min_rate 0.01/s: at least 9 votes in the 15 minutes.
        params={"threshold": P(0.3, production=0.2), "min_rate": P(0.01, production=0.005)},
        for_=P("30s", production="15m"),
        summary="Users vote {{ $labels.service }} answers down",
        description=(
            "{{ $value | humanizePercentage }} of the user votes over the last 15 minutes are thumbs down "
            "(threshold {threshold_pct}%)."
        ),
        dashboard="llm-cost",
        panel="Negative feedback share",
        signal="down votes / all votes of `llm_user_feedback_total` over 15 minutes",
        trigger="`feedback --negative-rate 0.8` (votes on real answers through POST /feedback)",
    ),
    Alert(
        name="LLMEvalRegression",
        group="llm_eval",
        service="rag_api",
        family="eval",
        severity="warning",
        # Both gauges come from the eval gate's push (simulations/eval.py): this run and the last passing one.
        expr=(
            "max by (service, eval_set, metric) (llm_eval_baseline_score)\n"
            "- on (service, eval_set, metric) max by (service, eval_set, metric) (llm_eval_score)\n"
            "> {threshold}"
        ),
        params={"threshold": P(0.05)},
        for_=P("30s", production="30m"),
        summary="Eval {{ $labels.metric }} of {{ $labels.service }} fell below its baseline",
        description=(
            'The last eval run ({{ $labels.eval_set }}) scored {{ printf "%.2f" $value }} below the last '
            "passing run on {{ $labels.metric }} (margin {threshold})."
        ),
        dashboard="llm-cost",
        panel="Eval scores per run",
        signal="baseline minus last run of `llm_eval_score` (Pushgateway)",
        trigger="an eval run with the `hallucination` fault after a passing one (`--pushgateway-url`)",
    ),
    Alert(
        name="LLMEvalStale",
        group="llm_eval",
        service="rag_api",
        family="eval",
        severity="warning",
        expr="time() - max by (service, eval_set) (llm_eval_last_run_timestamp_seconds) > {threshold}",
        params={"threshold": P(3600, production=2 * 86400)},
        for_=P("30s", production="1h"),
        summary="No eval run of {{ $labels.service }} for a while",
        description=(
            "The last eval run ({{ $labels.eval_set }}) ended {{ $value | humanizeDuration }} ago (threshold "
            "{threshold} s): quality changes since then are unchecked."
        ),
        dashboard="llm-cost",
        panel="Eval scores per run",
        signal="age of `llm_eval_last_run_timestamp_seconds` (Pushgateway)",
        production_note="(two days)",
        trigger="no `.venv/bin/python -m simulations eval --pushgateway-url …` for an hour",
    ),
]
