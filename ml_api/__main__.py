"""`python -m ml_api`: serve ml_api with host, port and workers from ML_HOST, ML_PORT, ML_WORKERS."""

from lab_common.serve import run_service
from ml_api.settings import MLSettings

if __name__ == "__main__":
    settings = MLSettings()
    run_service(
        "ml_api.app:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        service="ml_api",
        log_level=settings.log_level,
    )
