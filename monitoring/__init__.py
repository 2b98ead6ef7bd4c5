"""The monitoring contract: every alert declared once (monitoring/alerts/), rendered by `make generate`."""
