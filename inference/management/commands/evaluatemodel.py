from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inference import registry
from inference.evaluation import EVALUATION_BATCH, model_version_evaluate
from inference.labelled_data import TrainingError, describe_split, file_sha256, read_examples, split
from inference.management.commands.trainclassifier import parse_label_names
from inference.models import Evaluation, Task


class Command(BaseCommand):
    help = (
        "Evaluate a text classifier version on a labelled TSV: accuracy, per-label precision/recall/F1, the "
        "confusion matrix, expected calibration error and throughput. The figures are stored on the version "
        "(the admin shows them, and compares two versions side by side)."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="name:version (or a name, for its production version).")
        parser.add_argument("--data", required=True, help="TSV with a header; text first column, label last.")
        parser.add_argument("--label-names", nargs="*", default=[], help="Rename labels: 0=NEGATIVE 1=POSITIVE.")
        parser.add_argument(
            "--holdout",
            type=float,
            help="Evaluate only on the share trainclassifier held out of this file with the same "
            "--holdout, --limit and --seed (its validation split).",
        )
        parser.add_argument("--limit", type=int, help="With --holdout: the --limit the version was trained with.")
        parser.add_argument("--seed", type=int, default=0, help="With --holdout: the --seed it was trained with (0).")
        parser.add_argument("--batch-size", type=int, default=EVALUATION_BATCH, help="Inputs per forward pass (32).")

    def handle(self, *args, **options):
        version = registry.resolve(options["model"], task=Task.TEXT_CLASSIFICATION)
        if version is None:
            raise CommandError(f"No text-classification version '{options['model']}' (archived ones are not served).")
        path = Path(options["data"])
        try:
            examples = read_examples(path, parse_label_names(options["label_names"]))
            part = ""
            if options["holdout"] is not None:
                holdout, limit, seed = options["holdout"], options["limit"], options["seed"]
                examples = split(examples, holdout=holdout, limit=limit, seed=seed)[1]
                part = describe_split(holdout=holdout, limit=limit, seed=seed)
            evaluation = model_version_evaluate(
                version=version,
                examples=examples,
                data_path=str(path),
                data_sha256=file_sha256(path),
                split=part,
                actor="evaluatemodel command",
                batch_size=options["batch_size"],
            )
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(render(evaluation))


def render(evaluation: Evaluation) -> str:
    """The evaluation as a plain-text report."""
    report = evaluation.report
    labels = report["confusion"]["labels"]
    width = max(12, *(len(label) + 2 for label in labels))
    lines = [
        f"{evaluation.version} on {evaluation.data_name}: {evaluation.examples} examples "
        f"(data SHA-256 {evaluation.data_sha256[:12]}…)",
        f"accuracy {evaluation.accuracy:.4f}   macro F1 {evaluation.macro_f1:.4f}   "
        f"expected calibration error {evaluation.ece:.4f}",
        f"throughput {evaluation.throughput:.1f} sentences/s (batches of {report['run']['batch_size']}, "
        f"{report['run'].get('runtime', 'torch')}, {report['run']['torch_threads']} threads, "
        f"{report['run']['seconds']} s)",
        "",
        f"{'label':<{width}}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}",
    ]
    for label, figures in report["per_label"].items():
        lines.append(
            f"{label:<{width}}{figures['precision']:>10.4f}{figures['recall']:>10.4f}"
            f"{figures['f1']:>10.4f}{figures['support']:>10}"
        )
    lines += ["", "confusion matrix (rows: true label, columns: predicted)"]
    lines.append(" " * width + "".join(f"{label:>{width}}" for label in labels))
    for label, row in zip(labels, report["confusion"]["matrix"], strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    lines += ["", "calibration (confidence bin: examples, accuracy, mean confidence)"]
    for b in report["calibration"]:
        lines.append(f"  {b['from']:.1f}-{b['to']:.1f}: {b['count']:>6}  {b['accuracy']:.3f}  {b['confidence']:.3f}")
    lines.append(f"Stored as evaluation #{evaluation.pk} of {evaluation.version}.")
    return "\n".join(lines)
