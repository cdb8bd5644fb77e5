"""Sentences per second of the default sentiment classifier on each runtime, in-process.

Backs the runtime choice in docs/decisions/0075-onnx-runtime.md: the shipped head on the
packaged all-MiniLM-L6-v2 encoder, on PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8,
over N SST-2 sentences (longer than 30 characters, in file order) in batches of 32, once in
file order and once sorted by length (less padding); with the share of labels that match
PyTorch's and the accuracy against SST-2's labels. Exports go to MODEL_STORE as in serving;
the first run makes them (not timed). No database is used.

    SHARED_DATA_DIR=../shared/data .venv/bin/python scripts/measure_runtimes.py --sentences 3000 --threads 2
"""

import argparse
import os
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

import torch  # noqa: E402
from django.conf import settings  # noqa: E402

from inference.backends.embedding_head import EmbeddingHeadClassifier  # noqa: E402
from inference.backends.encoder import TextEncoder  # noqa: E402
from inference.backends.loading import resolve_source  # noqa: E402
from inference.management.commands.bootstrap import PACKAGED_MODEL, SENTIMENT_HEAD  # noqa: E402
from inference.models import Runtime  # noqa: E402

BATCH = 32


def examples(count: int) -> list[tuple[str, str]]:
    data = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data")) / "sst2" / "train.tsv"
    rows = [line.split("\t") for line in data.read_text().splitlines()[1:]]
    labelled = [(text.strip(), "POSITIVE" if label.strip() == "1" else "NEGATIVE") for text, label in rows]
    return [example for example in labelled if len(example[0]) > 30][:count]


def timed(classify, texts: list[str]) -> tuple[float, list[str]]:
    """Sentences per second, and the labels."""
    started = time.perf_counter()
    labels = [
        output.result["label"]
        for start in range(0, len(texts), BATCH)
        for output in classify(texts[start : start + BATCH])
    ]
    return len(texts) / (time.perf_counter() - started), labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch and ONNX Runtime intra-op threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    settings.TORCH_THREADS = args.threads  # what ONNX Runtime sessions follow
    labelled = examples(args.sentences)
    texts, truth = [text for text, _ in labelled], [label for _, label in labelled]
    by_length = sorted(texts, key=len)
    print(f"{len(texts)} SST-2 sentences, batches of {BATCH}, {args.threads} threads, in-process")
    print(f"{'runtime':<10} {'file order':>12} {'by length':>12} {'same as torch':>14} {'accuracy':>9}")
    reference: list[str] = []
    for runtime in (Runtime.TORCH, Runtime.ONNX_FP32, Runtime.ONNX_INT8):
        encoder = TextEncoder(resolve_source(PACKAGED_MODEL), runtime)
        if encoder.runtime != runtime:
            sys.exit(f"{runtime} fell back to {encoder.runtime}: see the log above.")
        classify = EmbeddingHeadClassifier(encoder, resolve_source(SENTIMENT_HEAD))
        classify(texts[:BATCH])  # warm-up
        in_order, labels = timed(classify, texts)
        by_length_rate, _ = timed(classify, by_length)
        reference = reference or labels
        same = sum(a == b for a, b in zip(labels, reference, strict=True)) / len(texts)
        accuracy = sum(a == b for a, b in zip(labels, truth, strict=True)) / len(texts)
        print(f"{runtime.value:<10} {in_order:>12.0f} {by_length_rate:>12.0f} {same:>14.4f} {accuracy:>9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
