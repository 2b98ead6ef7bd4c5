"""rag_api settings: every knob is an env var (prefix `RAG_`, OpenAI ones un-prefixed) with a safe default."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import SettingsConfigDict

from lab_common.endpoints import default_port
from lab_common.settings import ServiceSettings
from lab_common.state import records_path as lab_records_path
from monitoring.contract import threshold
from rag_api.safety.settings import SafetySettings

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_KNOWLEDGE_DIR = PACKAGE_DIR / "knowledge"
DEFAULT_REFERENCE_QUERIES = PACKAGE_DIR / "data" / "reference_queries.txt"


class ModelPrice(BaseModel):
    """USD per one million tokens."""

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)


def _default_prices() -> dict[str, ModelPrice]:
    # Public list prices (USD / 1M tokens); override with RAG_PRICE_TABLE='{"model": {"prompt": .., ...}}'.
    return {
        "gpt-4o-mini": ModelPrice(prompt=0.15, completion=0.60),
        "gpt-4o": ModelPrice(prompt=2.50, completion=10.00),
        "gpt-4.1-mini": ModelPrice(prompt=0.40, completion=1.60),
        "gpt-4.1-nano": ModelPrice(prompt=0.10, completion=0.40),
        # Simulated: the offline generator's estimated tokens priced like a small hosted model, so that
        # tokens, cost and budgets move in the lab.
        "offline": ModelPrice(prompt=0.50, completion=1.50),
    }


class RAGSettings(ServiceSettings):
    """RAG_WORKERS > 1: each worker keeps its own evaluation queue and query-drift window; embedded Chroma is
    one process's, so set RAG_CHROMA_HOST."""

    model_config = SettingsConfigDict(env_prefix="RAG_")

    port: int = Field(default=default_port("rag_api"), ge=1, le=65535)

    # Vector store: embedded Chroma in `chroma_path`, or a Chroma server when `chroma_host` is set.
    chroma_path: Path = Path("var/chroma")
    chroma_host: str | None = None
    chroma_port: int = Field(default=8002, ge=1, le=65535)
    collection: str = Field(default="knowledge", min_length=3, max_length=63)
    knowledge_dir: Path = DEFAULT_KNOWLEDGE_DIR
    # Chunks are cut on sentence/paragraph boundaries; sizes are in characters.
    chunk_size: int = Field(default=800, ge=100, le=8000)
    chunk_overlap: int = Field(default=150, ge=0, le=2000)
    top_k: int = Field(default=3, ge=1, le=10)

    # Generation. OpenAI (or any compatible server) is used when a key or a base URL is set.
    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url")
    )
    llm_model: str = "gpt-4o-mini"
    judge_model: str = "gpt-4o-mini"
    # The SDK's default read timeout is 600 s: far too long for a chat request.
    llm_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_max_tokens: int = Field(default=400, ge=16, le=4096)
    llm_temperature: float = Field(default=0.0, ge=0, le=2)
    # The offline extractive answer: this many sentences at most, and at most this many characters.
    answer_max_sentences: int = Field(default=4, ge=1, le=10)
    answer_max_chars: int = Field(default=600, ge=100, le=4000)
    # Embed every knowledge sentence in the background after start, so that no query pays for it.
    warm_sentence_cache: bool = True
    price_table: dict[str, ModelPrice] = Field(default_factory=_default_prices)

    # Tenants: the X-Tenant header through this allow-list (lower case); a request without one is
    # `default_tenant`'s, any other name is "other" (a metric label stays bounded).
    tenants: frozenset[str] = frozenset({"default", "acme", "globex"})
    default_tenant: str = "default"
    # USD a day per tenant (RAG_TENANT_DAILY_BUDGETS='{"acme": 20}'); the others get the default.
    tenant_daily_budgets: dict[str, float] = Field(default_factory=dict)
    default_daily_budget: float = Field(default=100.0, gt=0)

    # Answer records (rag_api/records.py): every served answer in SQLite, bounded by age and count. Feedback
    # on an answer is accepted while its record is kept. User ids (session_id) are stored salted and hashed.
    records_enabled: bool = True
    # Default: the lab's state directory (lab_common.state), where the records and feedback CLIs look too.
    records_path: Path = Field(default_factory=lab_records_path)
    records_retention_hours: float = Field(default=168.0, gt=0, le=24 * 365)
    records_max: int = Field(default=10_000, ge=10, le=10_000_000)
    records_user_salt: str = "observability-lab"
    # The evaluator's verdict on an answer, compared with the user's vote: grounded at or above this.
    grounded_threshold: float = Field(default=0.5, ge=0, le=1)

    # Quality evaluation: a share of answers is scored in the background by one worker.
    evaluation_sample_rate: float = Field(default=1.0, ge=0, le=1)
    evaluation_queue_size: int = Field(default=100, ge=1, le=100_000)
    # Score in one low-priority child process (the scorer is CPU-heavy Python: in a thread it would hold
    # the GIL against /chat). False: score in a thread of the service process.
    evaluation_in_process: bool = True
    # An evaluation not done after this long is abandoned (counted as failed and as a timeout) and a hung
    # evaluator child is replaced. Evaluations wait in `evaluation_concurrency` threads of their own, so a
    # hung scorer never holds up retrieval. The six or so judge calls of an OpenAI evaluation fit in 30 s.
    evaluation_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    evaluation_concurrency: int = Field(default=2, ge=1, le=32)

    # Query-embedding drift against the in-domain reference questions.
    reference_queries_path: Path = DEFAULT_REFERENCE_QUERIES
    drift_window_size: int = Field(default=50, ge=5, le=10_000)
    drift_min_samples: int = Field(default=10, ge=1, le=10_000)
    # The score is the share of recent queries unlike every reference question; above this = drifted.
    # "drifted" on /drift/status and the alert agree: the threshold is the monitoring contract's.
    drift_threshold: float = Field(default_factory=lambda: threshold("LLMEmbeddingDrift"), gt=0, le=1)
    # A query is "unlike" the reference when its novelty exceeds this quantile of the reference's own.
    drift_outlier_quantile: float = Field(default=0.95, gt=0.5, lt=1)

    # The safety chain (rag_api/safety/): its own env vars, RAG_SAFETY_* (rag_api/safety/settings.py).
    safety: SafetySettings = Field(default_factory=SafetySettings)

    @property
    def openai_enabled(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    def daily_budget_for(self, tenant: str) -> float:
        return self.tenant_daily_budgets.get(tenant, self.default_daily_budget)

    def price_for(self, model: str) -> ModelPrice:
        """Exact name first, then the longest configured prefix (dated snapshots); unknown models cost 0."""
        if model in self.price_table:
            return self.price_table[model]
        prefixes = [name for name in self.price_table if model.startswith(name)]
        if prefixes:
            return self.price_table[max(prefixes, key=len)]
        return ModelPrice(prompt=0.0, completion=0.0)
