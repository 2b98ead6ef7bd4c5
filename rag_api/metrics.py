"""Every Prometheus metric of rag_api (docs/metrics.md is the contract: names and labels must match)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from lab_common.cusum import LatencyCusum, cusum_gauge
from lab_common.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, request_metrics

HTTP = request_metrics("rag")
# In-service CUSUM of /chat's median latency per interval (lab_common/cusum.py): LatencyCusumAnomaly.
LATENCY_CUSUM = LatencyCusum(cusum_gauge("rag"), (("/chat", "POST"),))

# Generation and scoring take longer than a request's routing: extend the latency buckets upwards.
SLOW_BUCKETS = (*LATENCY_BUCKETS, 20.0, 30.0, 60.0)
DISTANCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0)

CHAT_REQUESTS = Counter("rag_chat_requests", "/chat outcomes.", ["status"])
CHAT_DURATION = Histogram("rag_chat_duration_seconds", "/chat end to end.", buckets=SLOW_BUCKETS)
RETRIEVAL_DURATION = Histogram(
    "rag_retrieval_duration_seconds", "Query embedding plus vector search.", buckets=LATENCY_BUCKETS
)
RETRIEVAL_DISTANCE = Histogram(
    "rag_retrieval_distance", "Cosine distance of each retrieved chunk (0 to 2).", buckets=DISTANCE_BUCKETS
)
KNOWLEDGE_CHUNKS = Gauge(
    "rag_knowledge_base_chunks", "Chunks in the knowledge collection.", multiprocess_mode="livemax"
)

GENERATION_DURATION = Histogram(
    "llm_generation_duration_seconds", "Answer generation by backend.", ["backend"], buckets=SLOW_BUCKETS
)
EVALUATION_DURATION = Histogram(
    "llm_evaluation_duration_seconds", "Scoring one answer, by provider.", ["provider"], buckets=SLOW_BUCKETS
)
GROUNDEDNESS = Histogram("llm_groundedness_score", "Groundedness of answers (0 to 1).", buckets=SCORE_BUCKETS)
HALLUCINATION = Histogram(
    "llm_hallucination_score", "Hallucination of answers: 1 - groundedness.", buckets=SCORE_BUCKETS
)
CONTEXT_RELEVANCE = Histogram(
    "llm_context_relevance_score",
    "Relevance of the retrieved context to the question (0 to 1).",
    buckets=SCORE_BUCKETS,
)
ANSWER_RELEVANCE = Histogram(
    "llm_answer_relevance_score", "Relevance of the answer to the question (0 to 1).", buckets=SCORE_BUCKETS
)
# OpenTelemetry GenAI semantic conventions (rag_api/usage.py): buckets as the convention gives them.
GENAI_TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, ... 67108864
GENAI_DURATION_BUCKETS = (
    *(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
    *(1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92),
)
GENAI_TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Input and output tokens of each GenAI operation (OpenTelemetry gen_ai.client.token.usage).",
    [
        "gen_ai_operation_name",
        "gen_ai_provider_name",
        "gen_ai_token_type",
        "gen_ai_request_model",
        "gen_ai_response_model",
    ],
    buckets=GENAI_TOKEN_BUCKETS,
)
GENAI_OPERATION_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "Duration of each GenAI operation (OpenTelemetry gen_ai.client.operation.duration).",
    [
        "gen_ai_operation_name",
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "gen_ai_response_model",
        "error_type",
    ],
    buckets=GENAI_DURATION_BUCKETS,
)
TOKEN_USAGE_ESTIMATED = Gauge(
    "llm_token_usage_estimated",
    "1 for a provider whose token counts are estimated here (MiniLM tokenizer), not reported by a server.",
    ["gen_ai_provider_name"],
    multiprocess_mode="livemax",
)
# Not in the convention: the price table of the settings applied to the tokens, per tenant (allow-listed).
COST = Counter(
    "llm_cost_dollars", "Estimated LLM cost in US dollars (price table in settings).", ["tenant", "model"]
)
TENANT_DAILY_BUDGET = Gauge(
    "llm_tenant_daily_budget_dollars",
    "Daily LLM budget of each tenant in US dollars (settings).",
    ["tenant"],
    multiprocess_mode="livemax",
)
USER_FEEDBACK = Counter(
    "llm_user_feedback",
    "User votes on answers (a changed vote counts again: see _replaced).",
    ["rating", "reason"],
)
USER_FEEDBACK_REPLACED = Counter(
    "llm_user_feedback_replaced",
    "Votes replaced by a second vote on the same answer, by old rating.",
    ["rating"],
)
FEEDBACK_VERDICTS = Counter(
    "llm_user_feedback_verdicts",
    "User votes by the automatic evaluator's verdict on the same answer: does the judge agree with people?",
    ["evaluator_verdict", "user_rating"],
)
RECORDS = Gauge("llm_answer_records", "Answers kept in the records file.", multiprocess_mode="livemax")
RECORDS_PRUNED = Counter(
    "llm_answer_records_pruned", "Answer records deleted: past the retention or the size bound.", ["reason"]
)
RECORD_ERRORS = Counter(
    "llm_answer_record_errors", "Answers that could not be recorded (served all the same)."
)
GENERATION_ERRORS = Counter(
    "llm_generation_errors", "Failed generation calls (fallback: answered offline instead).", ["reason"]
)
EVALUATION_QUEUE_DEPTH = Gauge(
    "llm_evaluation_queue_depth", "Answers waiting to be scored.", multiprocess_mode="livesum"
)
EVALUATIONS = Counter("llm_evaluations", "Evaluation outcomes (dropped: the queue was full).", ["result"])
EVALUATION_TIMEOUTS = Counter(
    "llm_evaluation_timeouts", "Evaluations abandoned after the timeout (also counted as failed)."
)
EVALUATION_STUCK = Gauge(
    "llm_evaluation_stuck",
    "1 while the last evaluation that ended timed out, else 0.",
    multiprocess_mode="livemax",
)
EMBEDDING_DRIFT = Gauge(
    "llm_embedding_drift_score",
    "Query-embedding drift: share of recent queries unlike the in-domain reference questions.",
    multiprocess_mode="livemax",
)
BACKEND_INFO = Gauge(
    "llm_backend_info",
    "Generation backend, model and evaluator; always 1.",
    ["backend", "model", "evaluator"],
    multiprocess_mode="livemax",
)

SAFETY_CHECKS = Counter(
    "llm_safety_checks",
    "Safety check outcomes by check, stage (input/output) and source (chat/external).",
    ["check", "stage", "outcome", "source"],
)
SAFETY_FLAGS = Counter(
    "llm_safety_flags",
    "Flagged texts by check, stage, category and severity (LOW/MEDIUM/HIGH).",
    ["check", "stage", "category", "severity", "source"],
)
SAFETY_SCORE = Histogram(
    "llm_safety_score", "Safety check scores (0 to 1).", ["check", "stage", "source"], buckets=SCORE_BUCKETS
)
SAFETY_DURATION = Histogram(
    "llm_safety_check_duration_seconds",
    "One safety check on one text.",
    ["check"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)

CHAT_STATUSES = ("ok", "error", "unavailable", "blocked")
GENERATION_ERROR_REASONS = ("timeout", "rate_limited", "http_error", "malformed", "fallback")
EVALUATION_RESULTS = ("ok", "failed", "dropped")
RATINGS = ("up", "down")
REASONS = ("wrong", "irrelevant", "unsafe", "slow", "other")
VERDICTS = ("grounded", "ungrounded", "unscored")


def initialise() -> None:
    """Create every bounded label combination at 0 so that rates and alerts work before the first event
    (the cost series of each tenant are created by rag_api.usage.UsageMeter.start)."""
    for status in CHAT_STATUSES:
        CHAT_REQUESTS.labels(status)
    for reason in GENERATION_ERROR_REASONS:
        GENERATION_ERRORS.labels(reason)
    for result in EVALUATION_RESULTS:
        EVALUATIONS.labels(result)
    for rating in RATINGS:
        USER_FEEDBACK_REPLACED.labels(rating)
        for reason in REASONS:
            USER_FEEDBACK.labels(rating, reason)
        for verdict in VERDICTS:
            FEEDBACK_VERDICTS.labels(verdict, rating)
    for reason in ("retention", "size"):
        RECORDS_PRUNED.labels(reason)
    from rag_api.safety.chain import initialise_metrics  # the chain owns its label vocabularies

    initialise_metrics()
