"""TruLens feedback providers for the two evaluation paths. Importing this module imports TruLens (~4 s): only
`rag_api.evaluation.build_evaluator` does, lazily.

* `OfflineEvidenceProvider` — a plain TruLens `Provider` whose feedback methods return the offline evidence
  scores of `rag_api.scoring` (no LLM).
* `OpenAIChatJudge` — a TruLens `LLMProvider` over the current OpenAI SDK's chat completions, so TruLens's
  built-in judge prompts (`groundedness_measure_with_cot_reasons`, `context_relevance`, `relevance`) run
  against OpenAI or any compatible server. (`trulens-providers-openai` pins openai<2 and calls the
  Responses API first, which compatible servers lack.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pydantic
from trulens.core.feedback.endpoint import Endpoint
from trulens.core.feedback.provider import Provider
from trulens.feedback.llm_provider import LLMProvider

from rag_api import scoring
from rag_api.usage import PROVIDER_OPENAI, LLMCall


class OfflineEvidenceProvider(Provider):
    """Lexical + MiniLM evidence behind TruLens's feedback-method names and signatures."""

    def groundedness_measure_with_cot_reasons(
        self, source: str, statement: str, question: str = ""
    ) -> tuple[float, dict]:
        # The question is optional extra evidence: a bare "yes"/"no" is judged through it, and word pairs the
        # answer merely echoes from it do not count as support.
        score, detail = scoring.groundedness([source], statement, question)
        reasons = [
            {"criteria": s.sentence, "score": round(1.0 - s.unsupported, 4), "words": s.words} for s in detail
        ]
        return score, {"reasons": reasons}

    def context_relevance(self, question: str, context: str) -> float:
        return scoring.context_relevance(question, context)

    def relevance(self, prompt: str, response: str) -> float:
        return scoring.answer_relevance(prompt, response)


class OpenAIChatJudge(LLMProvider):
    """TruLens LLM provider over `openai.OpenAI().chat.completions` (SDK retries and timeout apply)."""

    model_engine: str
    _client: Any = pydantic.PrivateAttr(default=None)
    _structured_ok: bool = pydantic.PrivateAttr(default=True)
    _lock: Any = pydantic.PrivateAttr(default_factory=threading.Lock)
    _calls: list[LLMCall] = pydantic.PrivateAttr(default_factory=list)  # GenAI usage since the last drain

    def __init__(self, *, client: Any, model: str) -> None:
        # Retries belong to the OpenAI SDK (max_retries); TruLens's own pacing loop would multiply them.
        endpoint = Endpoint(name=f"openai-chat-judge-{model}", rpm=6000, retries=0)
        super().__init__(model_engine=model, endpoint=endpoint)
        self._client = client

    def _create_chat_completion(
        self,
        prompt: str | None = None,
        messages: Sequence[dict] | None = None,
        response_format: type[pydantic.BaseModel] | None = None,
        **kwargs: Any,
    ) -> str:
        import openai

        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        params: dict[str, Any] = {k: kwargs[k] for k in ("temperature", "max_tokens", "seed") if k in kwargs}
        if response_format is not None and self._structured_ok:
            # Ask for the judge's JSON shape ({criteria, supporting_evidence, score}) so TruLens parses it
            # directly instead of making a second "reformat this text" call.
            schema = {"name": response_format.__name__, "schema": response_format.model_json_schema()}
            try:
                return self._complete(
                    messages, params | {"response_format": {"type": "json_schema", "json_schema": schema}}
                )
            except openai.BadRequestError as exc:  # no structured outputs here: plain text from now on
                if "response_format" not in str(exc) and "json_schema" not in str(exc):
                    raise
                with self._lock:
                    self._structured_ok = False
        return self._complete(messages, params)

    def drain_calls(self) -> list[LLMCall]:
        """The judge's LLM calls since the last drain (the scorer may run in a child process: the parent
        records them in its metrics)."""
        with self._lock:
            calls, self._calls = self._calls, []
        return calls

    def _complete(self, messages: Sequence[dict], params: dict[str, Any]) -> str:
        import openai

        start = time.perf_counter()
        try:
            completion = self._client.chat.completions.create(
                model=self.model_engine, messages=list(messages), **params
            )
        except openai.OpenAIError as exc:
            self._note(start, error_type=_error_type(exc))
            raise
        usage = getattr(completion, "usage", None)
        self._note(
            start,
            response_model=str(getattr(completion, "model", "") or self.model_engine),
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )
        if not completion.choices:
            raise ValueError("the judge returned no choices")
        content = completion.choices[0].message.content
        if not content or not content.strip():
            raise ValueError("the judge returned an empty message")
        return content

    def _note(self, start: float, **fields: Any) -> None:
        call = LLMCall(
            PROVIDER_OPENAI,
            self.model_engine,
            fields.pop("response_model", ""),
            fields.pop("input_tokens", 0),
            fields.pop("output_tokens", 0),
            time.perf_counter() - start,
            **fields,
        )
        with self._lock:
            if len(self._calls) < 1000:  # drained after every answer; a bound all the same
                self._calls.append(call)


def _error_type(exc: Exception) -> str:
    """The convention's error.type, from the bounded set the generator uses too."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APIStatusError | openai.APIConnectionError):
        return "http_error"
    return "malformed"
