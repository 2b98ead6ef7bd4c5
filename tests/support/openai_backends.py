"""The two OpenAI-compatible servers the OpenAI-path tests run against, behind one face.

"stand-in" is ours (tests/support/openai_server.py), "litellm" is LiteLLM's proxy
(tests/support/litellm_proxy.py). Both serve the same three models the same way: the generation model answers
a sentence, the judge model a TruLens verdict of 3/3, the rate-limited model HTTP 429 to every request. What
each can tell about the traffic it saw (attempts, usage reported) is read the way that server allows: the
stand-in records it, LiteLLM's access log is read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from tests.support.litellm_proxy import (
    GENERATION_MODEL,
    JUDGE_MODEL,
    JUDGE_REPLY,
    MOCK_USAGE,
    RATE_LIMITED_MODEL,
    LiteLLMProxy,
)
from tests.support.openai_server import OpenAICompatibleServer, echo_context_responder

BACKENDS = ("stand-in", "litellm")


class OpenAIBackend(ABC):
    name: str
    base_url: str
    api_key: str
    generation_model = GENERATION_MODEL
    judge_model = JUDGE_MODEL
    rate_limited_model = RATE_LIMITED_MODEL

    @abstractmethod
    def reset(self) -> None:
        """Forget the traffic seen so far (the counts below start again)."""

    @abstractmethod
    def rate_limited_attempts(self) -> int:
        """Requests answered 429 since the last reset."""

    @abstractmethod
    def served_usage(self) -> list[tuple[int, int]]:
        """(prompt_tokens, completion_tokens) the server reported for each answer since the last reset."""


def _stand_in_responder(request: dict[str, Any]) -> str:
    if request.get("model") == JUDGE_MODEL:
        return JUDGE_REPLY
    return echo_context_responder(request)


class StandInBackend(OpenAIBackend):
    name = "stand-in"
    api_key = "sk-stand-in"  # pragma: allowlist secret (made up: the stand-in checks none)

    def __init__(self) -> None:
        self.server = OpenAICompatibleServer(
            _stand_in_responder,
            models=(GENERATION_MODEL, JUDGE_MODEL, RATE_LIMITED_MODEL),
            failing_models={RATE_LIMITED_MODEL: "rate_limit"},
        ).start()
        self.base_url = self.server.base_url

    def reset(self) -> None:
        self.server.reset()

    def rate_limited_attempts(self) -> int:
        return sum(r.get("model") == RATE_LIMITED_MODEL for r in self.server.requests)

    def served_usage(self) -> list[tuple[int, int]]:
        return self.server.usages

    def stop(self) -> None:
        self.server.stop()


class LiteLLMBackend(OpenAIBackend):
    name = "litellm"

    def __init__(self, proxy: LiteLLMProxy) -> None:
        self.proxy = proxy
        self.base_url = proxy.base_url
        self.api_key = proxy.api_key
        self._seen = 0

    def _statuses(self) -> list[int]:
        return self.proxy.chat_statuses()[self._seen :]

    def reset(self) -> None:
        self._seen = len(self.proxy.chat_statuses())

    def rate_limited_attempts(self) -> int:
        return self._statuses().count(429)

    def served_usage(self) -> list[tuple[int, int]]:
        # Only mocks are configured, and a mock answer always reports the same usage.
        return [MOCK_USAGE] * self._statuses().count(200)
