"""ml_api: ticket-severity prediction with drift monitoring and RAG-assisted triage."""
