"""Labelled text files for training and evaluation: reading them, hashing them, splitting them."""

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path


class TrainingError(Exception):
    """The data or the request cannot produce a version or an evaluation; the message says why."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_examples(path: Path, label_names: dict[str, str] | None = None) -> list[Example]:
    """A TSV with a header line, the text in the first column and the label in the last.

    Split on tabs only, no CSV quoting: sentences may contain quote characters.
    """
    if not path.is_file():
        raise TrainingError(f"No file at {path}.")
    label_names = label_names or {}
    examples = []
    with path.open(encoding="utf-8") as handle:
        header = handle.readline()
        if "\t" not in header:
            raise TrainingError(f"{path}: the first line must be a tab-separated header, e.g. 'sentence<TAB>label'.")
        for number, line in enumerate(handle, start=2):
            if not line.strip():
                continue
            columns = line.rstrip("\r\n").split("\t")
            text, label = columns[0].strip(), columns[-1].strip()
            if len(columns) < 2 or not text or not label:
                raise TrainingError(f"{path}, line {number}: expected a text and a label separated by a tab.")
            examples.append(Example(text, label_names.get(label, label)))
    return examples


def split(examples: list[Example], *, holdout: float, limit: int | None, seed: int) -> tuple[list, list]:
    """(train, validation): a seeded shuffle, cut to `limit`, with the first `holdout` share held out."""
    if not 0 < holdout < 1:
        raise TrainingError("The held-out share must be between 0 and 1.")
    examples = list(examples)
    random.Random(seed).shuffle(examples)
    if limit:
        examples = examples[:limit]
    held = round(len(examples) * holdout)
    train, test = examples[held:], examples[:held]
    if not test or len({e.label for e in train}) < 2:
        raise TrainingError(
            f"{len(examples)} examples are too few: need a held-out split and at least two labels to train on."
        )
    return train, test


def describe_split(*, holdout: float, limit: int | None, seed: int) -> str:
    """How `split` carved the validation examples, in words that reproduce it."""
    of = f"the first {limit} examples of the shuffled file" if limit else "the shuffled file"
    return f"validation split: holdout {holdout:g} of {of} (seed {seed})"
