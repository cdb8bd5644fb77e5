from django.core.management.base import BaseCommand, CommandError

from inference.training import TrainingError, train_classifier


def _label_names(pairs: list[str]) -> dict[str, str]:
    names = {}
    for pair in pairs:
        raw, sep, name = pair.partition("=")
        if not sep or not raw or not name:
            raise CommandError(f"--label-names takes RAW=NAME pairs, e.g. 0=NEGATIVE; got {pair!r}.")
        names[raw] = name
    return names


class Command(BaseCommand):
    help = (
        "Train a text classifier (a head on a registered encoder's frozen embeddings) from a labelled TSV, "
        "report its held-out accuracy, save it under MODEL_STORE and register it as a draft version."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, help="TSV with a header; text first column, label last.")
        parser.add_argument("--base", required=True, help="Registered embeddings model (name or name:version).")
        parser.add_argument("--name", required=True, help="Model name to register the new version under.")
        parser.add_argument(
            "--model-version", dest="model_version", default="", help="Version string (default: head-<date>-<time>)."
        )
        parser.add_argument("--label-names", nargs="*", default=[], help="Rename labels: 0=NEGATIVE 1=POSITIVE.")
        parser.add_argument("--limit", type=int, help="Train and evaluate on at most this many examples.")
        parser.add_argument("--holdout", type=float, default=0.2, help="Share held out for evaluation (0.2).")
        parser.add_argument("--seed", type=int, default=0, help="Seeds the shuffle, split and fit.")

    def handle(self, *args, **options):
        def progress(percent, message):
            if options["verbosity"] >= 2:
                self.stderr.write(f"{percent:3d}% {message}")

        try:
            version = train_classifier(
                data_path=options["data"],
                base=options["base"],
                name=options["name"],
                version=options["model_version"],
                label_names=_label_names(options["label_names"]),
                limit=options["limit"],
                holdout=options["holdout"],
                seed=options["seed"],
                actor="trainclassifier command",
                progress=progress,
            )
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        metrics = version.metrics
        self.stdout.write(
            f"Registered {version} (draft) from {metrics['train_examples']} examples: held-out accuracy "
            f"{metrics['heldout_accuracy']:.3f} on {metrics['heldout_examples']} "
            f"(majority baseline {metrics['majority_baseline']:.3f})."
        )
