"""`python -m ml_api`: serve ml_api with host, port and workers from ML_HOST, ML_PORT, ML_WORKERS."""

from lab_common.serve import serve
from ml_api.settings import MLSettings

if __name__ == "__main__":
    serve("ml_api.app:app", MLSettings(), service="ml_api")
