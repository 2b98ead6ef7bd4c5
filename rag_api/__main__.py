"""`python -m rag_api`: serve rag_api with host, port and workers from RAG_HOST, RAG_PORT, RAG_WORKERS."""

from lab_common.serve import serve
from rag_api.settings import RAGSettings

if __name__ == "__main__":
    serve("rag_api.app:app", RAGSettings(), service="rag_api")
