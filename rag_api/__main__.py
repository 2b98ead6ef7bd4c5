"""`python -m rag_api`: serve rag_api with host, port and workers from RAG_HOST, RAG_PORT, RAG_WORKERS."""

from lab_common.serve import run_service
from rag_api.settings import RAGSettings

if __name__ == "__main__":
    settings = RAGSettings()
    run_service(
        "rag_api.app:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        service="rag_api",
        log_level=settings.log_level,
    )
