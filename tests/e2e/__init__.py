"""End-to-end tests: the real lab (services, Prometheus, Alertmanager, receiver) on free ports."""
