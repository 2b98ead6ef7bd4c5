"""Dashboards as code, on grafana-foundation-sdk: `make generate` (monitoring/generate.py) writes
grafana/dashboards/<uid>.json, which Grafana provisions; tests/monitoring/test_contract.py checks that the
committed files equal this output.

- panels.py: the lab's panel builders (time series, stat, heatmap, table) and queries;
- shared.py: panels every service dashboard has (requests, 5xx ratio, p90 by endpoint), for any service;
- thresholds.py: threshold lines; an alert's line is drawn on the panel its definition names;
- texts.py: a dashboard's words (title, description, one `## Panel title` section per panel) are prose in
  texts/<uid>.md;
- board.py: a dashboard = rows of panels; assembled with the SDK's row/panel grid;
- one module per dashboard (ml_service.py, llm_quality.py, pipeline_health.py), each defining `BOARD`.

Adding a dashboard (e.g. "LLM safety"):
1. `grafana/builder/llm_safety.py`: `BOARD = Board("llm-safety")`, then one function per row, decorated
   `@BOARD.row("Row title")`, returning its panels (`timeseries(...)`, `stat(...)`, shared RED panels from
   shared.py); widths add up to 24 per line, the SDK starts a new line there;
2. `grafana/builder/texts/llm-safety.md`: `# LLM safety`, a description paragraph, a `## Title` section per
   panel (the build fails on a panel without words or words without a panel);
3. one line `llm_safety.BOARD,` in `BOARDS` (registry.py); `make generate`, commit the JSON.
An alert whose definition names `dashboard="llm-safety", panel="Title"` gets its threshold line there.
"""
