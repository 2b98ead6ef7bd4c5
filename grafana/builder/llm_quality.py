"""The LLM quality dashboard (uid llm-quality): rag_api traffic, latency breakdown, answer quality,
retrieval and embedding drift, tokens and cost, the evaluation pipeline. Words: texts/llm-quality.md."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from .board import Board
from .panels import (
    RI,
    TimeSeries,
    heatmap,
    quantile_expr,
    quantiles,
    rate_by,
    share,
    stat,
    table,
    target,
    targets,
)
from .panels import timeseries as ts
from .shared import RAG_API, error_ratio, p90_by_endpoint, requests_by_status
from .thresholds import Line, alert_line

PanelList = list[Builder[dm.Panel]]
BOARD = Board("llm-quality")


@BOARD.row("Traffic")
def traffic() -> PanelList:
    outcomes = [rate_by("rag_chat_requests_total", "status")]
    return [
        requests_by_status(RAG_API).span(6),
        ts("Chat outcomes", outcomes, unit="reqps", stack=True).span(6),
        error_ratio(RAG_API).span(6),
        p90_by_endpoint(RAG_API).span(6),
    ]


@BOARD.row("Latency breakdown")
def latency() -> PanelList:
    http_p90 = quantile_expr("rag_http_request_duration_seconds", 0.9, where='endpoint="/chat"')
    chat = [*quantiles("rag_chat_duration_seconds"), target(http_p90, "HTTP /chat p90", "D")]
    return [
        ts("End-to-end /chat latency", chat, unit="s").span(6),
        ts("Retrieval latency", quantiles("rag_retrieval_duration_seconds"), unit="s").span(6),
        ts(
            "Generation latency by backend",
            quantiles("llm_generation_duration_seconds", by="backend"),
            unit="s",
        ).span(6),
        ts(
            "Evaluation latency by provider",
            quantiles("llm_evaluation_duration_seconds", by="provider"),
            unit="s",
        ).span(6),
    ]


def score(title: str, metric: str, qs: tuple[float, ...] = (0.1, 0.5, 0.9)) -> TimeSeries:
    """A 0-1 feedback score's percentiles."""
    return ts(title, quantiles(metric, qs), unit="percentunit", minimum=0, maximum=1).span(6)


@BOARD.row("Answer quality (TruLens feedback, 0-1)")
def quality() -> PanelList:
    mean = f"sum(rate(llm_groundedness_score_sum[{RI}])) / sum(rate(llm_groundedness_score_count[{RI}]))"
    return [
        score("Groundedness", "llm_groundedness_score").with_target(target(mean, "mean", "D")),
        score("Hallucination", "llm_hallucination_score", (0.5, 0.9, 0.99)),
        score("Context relevance", "llm_context_relevance_score"),
        # One alert watches both relevance scores; its definition names the context panel.
        score("Answer relevance", "llm_answer_relevance_score").line(alert_line("LLMRelevanceLow")),
        heatmap("Groundedness distribution", "llm_groundedness_score", unit="percentunit").span(12),
    ]


@BOARD.row("Retrieval and embedding drift")
def retrieval() -> PanelList:
    chunks = [target("max(rag_knowledge_base_chunks)", "chunks")]
    return [
        ts("Retrieval distance", quantiles("rag_retrieval_distance", (0.5, 0.9))),
        ts("Query embedding drift", [target("max(llm_embedding_drift_score)", "embedding drift")]),
        stat("Knowledge base chunks", chunks, decimals=0).line(Line(1, above=False)),
        table("Backend", [target("llm_backend_info", "{{backend}}")]).span(4),
    ]


@BOARD.row("Tokens and cost")
def cost() -> PanelList:
    per_hour = target(f"sum by (model) (rate(llm_cost_dollars_total[{RI}])) * 3600", "{{model}}")
    in_range = target("sum(increase(llm_cost_dollars_total[$__range]))", "cost")
    by = "gen_ai_provider_name, gen_ai_request_model"
    call_p90 = quantile_expr("gen_ai_client_operation_duration_seconds", 0.9, by=by)
    estimated = [
        target("max by (gen_ai_provider_name) (llm_token_usage_estimated)", "{{gen_ai_provider_name}}")
    ]
    return [
        ts(
            "Tokens per second by model and type",
            [rate_by("gen_ai_client_token_usage_sum", "gen_ai_request_model, gen_ai_token_type")],
            stack=True,
        ).span(6),
        ts("Cost per hour by model", [per_hour], unit="currencyUSD", stack=True).span(6),
        ts(
            "LLM call latency p90",
            [target(call_p90, "{{gen_ai_provider_name}} {{gen_ai_request_model}}")],
            unit="s",
        ).span(6),
        stat("Cost over the range", [in_range], unit="currencyUSD", decimals=4).span(3),
        stat("Estimated token counts", estimated, decimals=0).span(3),
    ]


@BOARD.row("Evaluation pipeline")
def evaluation() -> PanelList:
    queued = targets(("max(llm_evaluation_queue_depth)", "queued"), ("max(llm_evaluation_stuck)", "stuck"))
    timed_out = f"sum(rate(llm_evaluation_timeouts_total[{RI}])) / sum(rate(llm_evaluations_total[{RI}]))"
    failed = targets(
        (share("llm_evaluations_total", 'result="failed"'), "failed share"),
        (timed_out, "timed-out share (part of failed)"),
    )
    errors = [rate_by("llm_generation_errors_total", "reason")]
    return [
        ts("Evaluation queue depth", queued, minimum=0).span(6),
        ts(
            "Evaluations by result", [rate_by("llm_evaluations_total", "result")], unit="reqps", stack=True
        ).span(6),
        ts("Evaluation failure ratio", failed, unit="percentunit", minimum=0).span(6),
        ts("Generation errors by reason", errors, unit="reqps", stack=True).span(6),
    ]
