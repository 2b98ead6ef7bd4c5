"""rag_api: retrieval-augmented chat over the Nimbus Desk knowledge base, monitored with Prometheus."""

__version__ = "0.1.0"
