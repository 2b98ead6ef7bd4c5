"""Grafana: provisioning, the dashboards it loads (dashboards/*.json) and the code writing them (builder/)."""
