"""The LLM quality dashboard (uid llm-quality): rag_api traffic, latency breakdown, answer quality,
retrieval and embedding drift, tokens and cost, the evaluation pipeline."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from .board import Board
from .panels import RI, TimeSeries, heatmap, quantile_expr, quantiles, rate_by, share, stat, table, target
from .panels import timeseries as ts
from .shared import RAG_API, error_ratio, p90_by_endpoint, requests_by_status
from .thresholds import Line, alert_line

PanelList = list[Builder[dm.Panel]]


def traffic() -> PanelList:
    return [
        requests_by_status(RAG_API).span(6),
        ts(
            "Chat outcomes",
            "/chat calls by outcome. `unavailable` means the vector store or backend could not answer.",
            [rate_by("rag_chat_requests_total", "status")],
            unit="reqps",
            stack=True,
        ).span(6),
        error_ratio(RAG_API).span(6),
        p90_by_endpoint(RAG_API, " /chat dominates; /health should be flat.").span(6),
    ]


def latency() -> PanelList:
    http_chat_p90 = quantile_expr("rag_http_request_duration_seconds", 0.9, where='endpoint="/chat"')
    return [
        ts(
            "End-to-end /chat latency",
            "p50/p90/p99 of /chat from request to answer (retrieval + generation; scoring runs after), "
            "and the p90 of the HTTP /chat latency that the latency alert watches.",
            [*quantiles("rag_chat_duration_seconds"), target(http_chat_p90, "HTTP /chat p90", "D")],
            unit="s",
        ).span(6),
        ts(
            "Retrieval latency",
            "Embedding the question and searching the vector store. Rises with a remote Chroma or a "
            "larger knowledge base.",
            quantiles("rag_retrieval_duration_seconds"),
            unit="s",
        ).span(6),
        ts(
            "Generation latency by backend",
            "Answer generation per backend. The `latency` fault adds its delay here.",
            quantiles("llm_generation_duration_seconds", by="backend"),
            unit="s",
        ).span(6),
        ts(
            "Evaluation latency by provider",
            "Scoring one answer (groundedness and relevance feedback). Slow scoring grows the queue.",
            quantiles("llm_evaluation_duration_seconds", by="provider"),
            unit="s",
        ).span(6),
    ]


def score(title: str, description: str, metric: str, qs: tuple[float, ...]) -> TimeSeries:
    """A 0-1 feedback score's percentiles."""
    return ts(title, description, quantiles(metric, qs), unit="percentunit", minimum=0, maximum=1).span(6)


def quality() -> PanelList:
    mean = f"sum(rate(llm_groundedness_score_sum[{RI}])) / sum(rate(llm_groundedness_score_count[{RI}]))"
    groundedness = score(
        "Groundedness",
        "How much of each answer the retrieved context supports: p10/p50/p90 and the mean. The "
        "`hallucination` fault drags the low percentiles down first.",
        "llm_groundedness_score",
        (0.1, 0.5, 0.9),
    )
    return [
        groundedness.with_target(target(mean, "mean", "D")),
        score(
            "Hallucination",
            "1 - groundedness: p50/p90/p99. Higher is worse; the alert watches p90.",
            "llm_hallucination_score",
            (0.5, 0.9, 0.99),
        ),
        score(
            "Context relevance",
            "How relevant the retrieved chunks are to the question (p10/p50/p90). Off-domain questions "
            "lower it; so does a broken index.",
            "llm_context_relevance_score",
            (0.1, 0.5, 0.9),
        ),
        # One alert watches both relevance scores; its definition names the context panel.
        score(
            "Answer relevance",
            "How well the answer addresses the question (p10/p50/p90).",
            "llm_answer_relevance_score",
            (0.1, 0.5, 0.9),
        ).line(alert_line("LLMRelevanceLow")),
        heatmap(
            "Groundedness distribution",
            "Groundedness of each scored answer over time; a second band near 0 is hallucinated answers.",
            "llm_groundedness_score",
            unit="percentunit",
        ).span(12),
    ]


def retrieval() -> PanelList:
    return [
        ts(
            "Retrieval distance",
            "Cosine distance of retrieved chunks (0 = identical, 2 = opposite): p50/p90. Rising distance "
            "means questions the knowledge base does not cover.",
            quantiles("rag_retrieval_distance", (0.5, 0.9)),
        ),
        ts(
            "Query embedding drift",
            "Drift of recent question embeddings against the in-domain reference questions.",
            [target("max(llm_embedding_drift_score)", "embedding drift")],
        ),
        stat(
            "Knowledge base chunks",
            "Chunks in the vector store collection. 0 means the knowledge base was not ingested.",
            [target("max(rag_knowledge_base_chunks)", "chunks")],
            decimals=0,
        ).line(Line(1, above=False)),
        table(
            "Backend",
            "Which generation backend, model and evaluator each rag_api instance uses.",
            [target("llm_backend_info", "{{backend}}")],
        ).span(4),
    ]


def cost() -> PanelList:
    return [
        ts(
            "Tokens per second by model and type",
            "Prompt and completion tokens per second. Prompt tokens grow with retrieved context size.",
            [rate_by("llm_tokens_total", "model, type")],
            stack=True,
        ),
        ts(
            "Cost per hour by model",
            "Estimated spend rate from the price table in settings (0 for the offline backend).",
            [target(f"sum by (model) (rate(llm_cost_dollars_total[{RI}])) * 3600", "{{model}}")],
            unit="currencyUSD",
            stack=True,
        ),
        stat(
            "Cost over the range",
            "Estimated dollars spent in the selected time range.",
            [target("sum(increase(llm_cost_dollars_total[$__range]))", "cost")],
            unit="currencyUSD",
            decimals=4,
        ).span(8),
    ]


def evaluation() -> PanelList:
    return [
        ts(
            "Evaluation queue depth",
            "Answers waiting to be scored. A steady climb means scoring is slower than traffic; when the "
            "queue is full, answers are dropped unscored.",
            [target("max(llm_evaluation_queue_depth)", "queued")],
            minimum=0,
        ).span(6),
        ts(
            "Evaluations by result",
            "Scored answers per second: `ok`, `failed` (the evaluator raised, e.g. the "
            "`evaluation_failure` fault) and `dropped` (queue full).",
            [rate_by("llm_evaluations_total", "result")],
            unit="reqps",
            stack=True,
        ).span(6),
        ts(
            "Evaluation failure ratio",
            "Share of evaluations that failed. The quality panels above only describe the answers that "
            "could be scored, so a high failure ratio makes them less trustworthy.",
            [target(share("llm_evaluations_total", 'result="failed"'), "failed share")],
            unit="percentunit",
            minimum=0,
        ).span(6),
        ts(
            "Generation errors by reason",
            "Failed generation calls: timeouts, HTTP errors, malformed replies and fallbacks to the offline "
            "backend.",
            [rate_by("llm_generation_errors_total", "reason")],
            unit="reqps",
            stack=True,
        ).span(6),
    ]


BOARD = Board(
    uid="llm-quality",
    title="LLM quality",
    description="rag_api: traffic, latency breakdown, TruLens answer quality, retrieval, embedding drift, "
    "tokens and cost.",
    rows=[
        ("Traffic", traffic),
        ("Latency breakdown", latency),
        ("Answer quality (TruLens feedback, 0-1)", quality),
        ("Retrieval and embedding drift", retrieval),
        ("Tokens and cost", cost),
        ("Evaluation pipeline", evaluation),
    ],
)
