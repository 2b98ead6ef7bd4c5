"""rag_api alerts: answer quality, question drift, /chat latency, the evaluation pipeline."""

from __future__ import annotations

from monitoring.alerts.ml import MIN_RATE
from monitoring.contract import Alert, P

ALERTS = [
    Alert(
        name="LLMHallucinationHigh",
        group="llm_service",
        service="rag_api",
        family="quality",
        severity="critical",
        expr=(
            "service:llm_hallucination_score:p90_rate1m > {threshold}\n"
            "and on (service) service:llm_scored_answers:rate1m > {min_rate}"
        ),
        params={"threshold": P(0.5), "min_rate": MIN_RATE},
        for_=P("30s", production="15m"),
        summary="{{ $labels.service }} answers are not supported by the retrieved context",
        description=(
            '90th percentile hallucination score is {{ printf "%.2f" $value }} (threshold {threshold}): at '
            "least one answer in ten is mostly unsupported by its sources."
        ),
        dashboard="llm-quality",
        panel="Hallucination",
        signal="p90 of `llm_hallucination_score`",
        production_note="over `[15m]`",
        trigger="rag_api `hallucination` fault, `rate` ≥ 0.2",
    ),
    Alert(
        name="LLMGroundednessLow",
        group="llm_service",
        service="rag_api",
        family="quality",
        severity="warning",
        expr=(
            "service:llm_groundedness_score:p50_rate1m < {threshold}\n"
            "and on (service) service:llm_scored_answers:rate1m > {min_rate}"
        ),
        op="<",
        params={"threshold": P(0.5, production=0.6), "min_rate": MIN_RATE},
        for_=P("45s", production="30m"),
        summary="Typical {{ $labels.service }} answer is poorly grounded",
        description=(
            'Median groundedness score is {{ printf "%.2f" $value }} (threshold {threshold}) over the '
            "answers scored in the last minute."
        ),
        dashboard="llm-quality",
        panel="Groundedness",
        signal="median of `llm_groundedness_score`",
        production_note="over `[15m]`",
        trigger="rag_api `hallucination` fault, `rate` ≥ 0.6 (muted by `LLMHallucinationHigh`)",
    ),
    Alert(
        name="LLMRelevanceLow",
        group="llm_service",
        service="rag_api",
        family="quality",
        severity="warning",
        expr=(
            "service:llm_relevance_score:p50_rate1m < {threshold}\n"
            "and on (service) service:llm_scored_answers:rate1m > {min_rate}"
        ),
        op="<",
        params={"threshold": P(0.3, production=0.4), "min_rate": MIN_RATE},
        for_=P("45s", production="30m"),
        summary="Low {{ $labels.score }} on {{ $labels.service }}",
        description=(
            'Median {{ $labels.score }} is {{ printf "%.2f" $value }} (threshold {threshold}) over the '
            "answers scored in the last minute."
        ),
        dashboard="llm-quality",
        panel="Context relevance",
        signal="median context relevance and median answer relevance (label `score`)",
        production_note="over `[15m]`",
        trigger=(
            "off-topic questions to /chat (e.g. those of tests/data/out_of_domain_questions.txt): retrieval "
            "finds nothing relevant"
        ),
    ),
    Alert(
        name="LLMEmbeddingDrift",
        group="llm_service",
        service="rag_api",
        family="drift",
        severity="warning",
        expr="max by (service) (llm_embedding_drift_score) > {threshold}",
        params={"threshold": P(0.3)},
        for_=P("45s", production="30m"),
        summary="Questions to {{ $labels.service }} drifted away from the knowledge base's domain",
        description=(
            'Query-embedding drift score {{ printf "%.2f" $value }} against the in-domain reference '
            "questions (threshold {threshold})."
        ),
        dashboard="llm-quality",
        panel="Query embedding drift",
        signal="`llm_embedding_drift_score` (query embeddings vs in-domain reference questions)",
        trigger="off-topic questions to /chat (e.g. those of tests/data/out_of_domain_questions.txt)",
    ),
    Alert(
        name="LLMHighLatency",
        group="llm_service",
        service="rag_api",
        family="latency",
        severity="warning",
        expr=(
            'service:http_request_duration_seconds:p90_rate1m{service="rag_api"} > {threshold}\n'
            "and on (service) service:http_request_duration_seconds_count:rate1m > {min_rate}"
        ),
        params={"threshold": P(2, production=5), "min_rate": MIN_RATE},
        for_=P("45s", production="10m"),
        summary="Slow answers on {{ $labels.service }}: /chat p90 above {threshold}s",
        description="90th percentile /chat latency is {{ $value | humanizeDuration }} over the last minute.",
        dashboard="llm-quality",
        panel="End-to-end /chat latency",
        signal="p90 of rag_api `/chat` (`service:http_request_duration_seconds:p90_rate1m`)",
        production_note="over `[5m]` (with a real LLM)",
        trigger="rag_api `latency` fault, `delay_ms` ≥ 2500 (e.g. 3000 → p90 ≈ 4.75 s)",
    ),
    Alert(
        name="LLMEvaluationBacklog",
        group="llm_service",
        service="rag_api",
        family="evaluation",
        severity="warning",
        expr="max by (service) (llm_evaluation_queue_depth) > {threshold}",
        # Production: 80 % of the default queue size (RAG_EVALUATION_QUEUE_SIZE=100).
        params={"threshold": P(50, production=80)},
        for_=P("1m", production="10m"),
        summary="Answer evaluation on {{ $labels.service }} is falling behind",
        description=(
            "{{ $value | humanize }} answers are waiting to be scored; quality metrics lag behind the "
            "traffic and answers are dropped unscored once the queue is full."
        ),
        dashboard="llm-quality",
        panel="Evaluation queue depth",
        signal="`llm_evaluation_queue_depth`",
        production_note="(80 % of the default queue size, 100)",
        trigger=(
            "a /chat load burst faster than the evaluator (many Locust users), or a slow OpenAI evaluator"
        ),
    ),
    Alert(
        name="LLMEvaluationFailures",
        group="llm_service",
        service="rag_api",
        family="evaluation",
        severity="warning",
        expr=(
            "service:llm_evaluations_failed:ratio_rate1m > {threshold}\n"
            "and on (service) service:llm_evaluations:rate1m > {min_rate}"
        ),
        params={"threshold": P(0.2, production=0.05), "min_rate": MIN_RATE},
        for_=P("30s", production="15m"),
        summary="Answer evaluations fail on {{ $labels.service }}",
        description=(
            "{{ $value | humanizePercentage }} of the evaluations over the last minute failed; the quality "
            "metrics only describe the answers that could be scored."
        ),
        dashboard="llm-quality",
        panel="Evaluation failure ratio",
        signal="failed evaluations / all evaluation outcomes",
        production_note="over `[15m]`",
        trigger="rag_api `evaluation_failure` fault, `rate` ≥ 0.3",
    ),
    Alert(
        name="LLMEvaluationStuck",
        group="llm_service",
        service="rag_api",
        family="evaluation",
        severity="warning",
        expr=(
            "sum by (service) (rate(llm_evaluation_timeouts_total[1m])) > 0\n"
            "and on (service) max by (service) (llm_evaluation_stuck) > {threshold}"
        ),
        params={"threshold": P(0)},
        for_=P("1m", production="5m"),
        comment=(
            "The gauge stays 1 until an evaluation finishes, traffic or not: alert only while evaluations "
            "keep timing out, i.e. while answers wait for a scorer that hangs."
        ),
        summary="Answer evaluation on {{ $labels.service }} is stuck",
        description=(
            '{{ printf "%.2f" $value }} evaluations per second time out and none has finished since: '
            "the scorer hangs. Quality metrics stop updating and evaluate=sync calls wait out "
            "RAG_EVALUATION_TIMEOUT_SECONDS."
        ),
        dashboard="llm-quality",
        signal="`llm_evaluation_timeouts_total` while `llm_evaluation_stuck` is 1",
        trigger=(
            "the evaluator child stopped (`kill -STOP`) while answers are scored (mutes "
            "`LLMEvaluationFailures` and `LLMEvaluationBacklog`)"
        ),
    ),
]
