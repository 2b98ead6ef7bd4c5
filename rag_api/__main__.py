"""`python -m rag_api`: the service on RAG_HOST:RAG_PORT (default 127.0.0.1:8001) with uvicorn."""

from __future__ import annotations

import uvicorn

from rag_api.settings import RAGSettings


def main() -> None:
    settings = RAGSettings()
    uvicorn.run(
        "rag_api.app:app", host=settings.host, port=settings.port, log_level=settings.log_level.lower()
    )


if __name__ == "__main__":
    main()
