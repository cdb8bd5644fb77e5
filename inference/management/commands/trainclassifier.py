import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.fine_tuning import FineTuning, fine_tune_classifier
from inference.training import TrainingError, train_classifier


def parse_label_names(pairs: list[str]) -> dict[str, str]:
    names = {}
    for pair in pairs:
        raw, sep, name = pair.partition("=")
        if not sep or not raw or not name:
            raise CommandError(f"--label-names takes RAW=NAME pairs, e.g. 0=NEGATIVE; got {pair!r}.")
        names[raw] = name
    return names


class Command(BaseCommand):
    help = (
        "Train a text classifier from a labelled TSV: by default a head on a registered encoder's frozen "
        "embeddings (minutes), with --fine-tune the encoder and a head together (hours on a CPU). "
        "Reports its held-out accuracy, saves it under MODEL_STORE and registers it as a draft version "
        "evaluated on the held-out split."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, help="TSV with a header; text first column, label last.")
        parser.add_argument("--base", default="embeddings", help="Registered embeddings model (name or name:version).")
        parser.add_argument("--name", required=True, help="Model name to register the new version under.")
        parser.add_argument(
            "--model-version",
            dest="model_version",
            default="",
            help="Version string (default: head-/ft-<date>-<time>).",
        )
        parser.add_argument("--label-names", nargs="*", default=[], help="Rename labels: 0=NEGATIVE 1=POSITIVE.")
        parser.add_argument("--limit", type=int, help="Train and evaluate on at most this many examples.")
        parser.add_argument("--holdout", type=float, default=0.2, help="Share held out for evaluation (0.2).")
        parser.add_argument("--seed", type=int, default=0, help="Seeds the shuffle, split and fit.")
        tuning = parser.add_argument_group("fine-tuning (--fine-tune)")
        tuning.add_argument("--fine-tune", action="store_true", help="Train the encoder too, not only a head.")
        defaults = FineTuning()
        tuning.add_argument("--epochs", type=int, default=defaults.epochs, help="At most this many passes (3).")
        tuning.add_argument("--batch-size", type=int, default=defaults.batch_size, help="Sentences per step (32).")
        tuning.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="Peak rate (1e-4).")
        tuning.add_argument("--warmup", type=float, default=defaults.warmup, help="Share of steps warming up (0.06).")
        tuning.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW's (0.01).")
        tuning.add_argument(
            "--patience", type=int, default=defaults.patience, help="Stop after this many epochs without gain (1)."
        )
        tuning.add_argument("--max-minutes", type=float, help="Stop after this long; keep the best model so far.")
        tuning.add_argument("--max-steps", type=int, help="Stop after this many optimiser steps in all.")
        tuning.add_argument("--device", default="", help="cuda or cpu (default: cuda when present).")
        tuning.add_argument("--resume", default="", help="Continue from the checkpoint directory of an earlier run.")

    def handle(self, *args, **options):
        fine_tune = options["fine_tune"] or options["resume"]
        bar = tqdm(
            total=100,
            bar_format="{percentage:3.0f}%|{bar:20}| {elapsed} {desc}",
            file=sys.stderr,
            disable=options["verbosity"] < 1,
        )

        def progress(percent: int, message: str) -> None:
            bar.n = percent
            bar.set_description_str(message)

        common = {
            "data_path": options["data"],
            "base": options["base"],
            "name": options["name"],
            "version": options["model_version"],
            "label_names": parse_label_names(options["label_names"]),
            "limit": options["limit"],
            "holdout": options["holdout"],
            "seed": options["seed"],
            "actor": "trainclassifier command",
            "progress": progress,
        }
        try:
            if fine_tune:
                version = fine_tune_classifier(
                    **common,
                    options=FineTuning(
                        learning_rate=options["learning_rate"],
                        batch_size=options["batch_size"],
                        weight_decay=options["weight_decay"],
                        warmup=options["warmup"],
                        epochs=options["epochs"],
                        patience=options["patience"],
                        max_minutes=options["max_minutes"],
                        max_steps=options["max_steps"],
                        device=options["device"],
                    ),
                    resume=options["resume"],
                )
            else:
                version = train_classifier(**common)
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        metrics = version.metrics
        evaluation = version.evaluations.get()
        self.stdout.write(
            f"Registered {version} (draft) from {metrics['train_examples']} examples: held-out accuracy "
            f"{metrics['heldout_accuracy']:.3f} on {metrics['heldout_examples']} "
            f"(majority baseline {metrics['majority_baseline']:.3f}); macro F1 {evaluation.macro_f1:.3f}, "
            f"calibration error {evaluation.ece:.3f}, {evaluation.throughput:.0f} sentences/s served."
        )
        if fine_tune:
            self.stdout.write(
                f"Stopped: {metrics['stopped']}, after {metrics['steps']} steps ({metrics['epochs']} epochs) "
                f"in {metrics['train_seconds'] / 60:.1f} min of training. To continue: --resume {metrics['checkpoint']}"
            )
