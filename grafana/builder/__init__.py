"""Dashboards as code, on grafana-foundation-sdk: `make dashboards` (`python -m grafana.builder`) writes
grafana/dashboards/<uid>.json, which Grafana provisions; tests/test_dashboards_static.py checks the committed
files equal this output.

- panels.py: the lab's panel builders (time series, stat, heatmap, table) and queries;
- shared.py: panels every service dashboard has (requests, 5xx ratio, p90 by endpoint), for any service;
- thresholds.py: threshold lines; an alert's line is drawn on the panel its definition names;
- board.py: a dashboard = title, description, rows of panels; assembled with the SDK's row/panel grid;
- one module per dashboard (ml_service.py, llm_quality.py, pipeline_health.py), each defining `BOARD`.

Adding a dashboard: write `grafana/builder/<name>.py` defining `BOARD = Board(uid=..., title=...,
description=..., rows=[(row title, function returning its panels), ...])` (panels 24 columns wide per line;
the SDK wraps at 24), add `<name>.BOARD` to `BOARDS` in registry.py, run `make dashboards`.
"""
