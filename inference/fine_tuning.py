"""Versions from data, the long way: fine-tune the encoder and a classification head together.

The registered encoder's weights become a sequence classifier (AutoModelForSequenceClassification:
the encoder, its pooler and a new linear layer), trained with AdamW on cross-entropy under a
linear warm-up and decay. Batches are cut from length-sorted buckets and then shuffled, so each
pads little while consecutive steps still mix lengths. After each epoch the held-out split is
measured, the best weights are kept, and training stops once `patience` epochs bring no gain.
A checkpoint after each epoch, and wherever a step or time budget stops it, lets a later run
resume where this one stopped. The result is saved with save_pretrained under MODEL_STORE and
served by the transformers backend like any hub classifier.
"""

import json
import math
import os
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from django.conf import settings
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from inference.backends.loading import resolve_source
from inference.labelled_data import TrainingError
from inference.models import Backend, ModelVersion, Task
from inference.training import Progress, TrainingData, prepare, register_trained, save_atomically

# Training truncates here: SST-2's longest sentence is about 70 tokens, and attention cost grows
# with the square of the length.
TRAIN_MAX_TOKENS = 128
# Batches per length bucket: sorted within a bucket (little padding), shuffled across buckets.
BUCKET_BATCHES = 50
CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
# A time budget re-plans the learning-rate decay this often, from the measured step time.
REPLAN_EVERY_STEPS = 20
STEP_TIME_WINDOW = 100
# Kept free at the end of a time budget for saving the model and registering it.
SAVE_RESERVE_S = 15.0
REPORT_EVERY_S = 1.0


@dataclass(frozen=True)
class FineTuning:
    """How to train and when to stop; the first four are fixed by the first run of a checkpoint."""

    learning_rate: float = 1e-4  # a small encoder (22M parameters) takes more than BERT-base's 2e-5 to 5e-5
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup: float = 0.06
    epochs: int = 3
    patience: int = 1
    max_minutes: float | None = None
    max_steps: int | None = None
    device: str = ""  # empty: CUDA when present, else the CPU


@dataclass
class _Progress:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done in the current epoch
    examples: int = 0
    seconds: float = 0.0  # time spent in training steps, over every run
    loss: float | None = None  # moving average
    best_accuracy: float | None = None
    best_step: int = 0
    stale_epochs: int = 0
    history: list = field(default_factory=list)


class _Schedule:
    """Linear warm-up over a share of `total` steps to the full rate, then linear decay to zero at `total`.

    Under a time budget `total` is fitted to the time left as the step time is measured, so the
    decay ends when the budget does instead of stopping at a high rate; the warm-up follows it."""

    def __init__(self, total: int, warmup_share: float):
        self.total = total
        self.warmup_share = warmup_share

    @property
    def warmup(self) -> int:
        return max(1, round(self.total * self.warmup_share))

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))


def length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(len(lengths)))
    rng.shuffle(order)
    bucket = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start : start + bucket], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def fine_tune_classifier(
    *,
    data_path: str,
    base: str,
    name: str,
    version: str = "",
    label_names: dict[str, str] | None = None,
    limit: int | None = None,
    holdout: float = 0.2,
    seed: int = 0,
    options: FineTuning | None = None,
    resume: str = "",
    actor: str,
    progress: Progress | None = None,
) -> ModelVersion:
    """Fine-tune, save under MODEL_STORE, register a draft transformers version evaluated on its held-out split.

    `resume` is a checkpoint directory of an earlier run: the data must be the same file; its
    split, labels and optimiser settings are taken from the checkpoint."""
    report = progress or (lambda percent, message: None)
    options = options or FineTuning()
    # The budget covers the whole run, loading and saving included.
    deadline = time.monotonic() + options.max_minutes * 60 if options.max_minutes else None
    report(0, "reading data")
    checkpoint = _read_checkpoint(Path(resume)) if resume else None
    if checkpoint:
        base, label_names = checkpoint["base"], checkpoint["data"]["label_names"]
        holdout, limit, seed = checkpoint["data"]["holdout"], checkpoint["data"]["limit"], checkpoint["data"]["seed"]
    encoder_version, version, data = prepare(
        data_path=data_path,
        base=base,
        name=name,
        version=version,
        default_prefix="ft",
        label_names=label_names,
        limit=limit,
        holdout=holdout,
        seed=seed,
    )
    if checkpoint and checkpoint["data"]["sha256"] != data.sha256:
        raise TrainingError(f"{data.path} is not the file the checkpoint in {resume} was trained on.")
    directory = Path(resume) if resume else settings.MODEL_STORE / ".checkpoints" / name / version
    if not resume and directory.exists():
        raise TrainingError(f"{directory} already exists; resume from it or choose another version.")
    hyper = (
        checkpoint["hyper"]
        if checkpoint
        else {k: getattr(options, k) for k in ("learning_rate", "batch_size", "weight_decay", "warmup")}
    )
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    report(1, "loading the encoder")
    path = resolve_source(encoder_version.source)
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(data.labels),
        id2label=dict(enumerate(data.labels)),
        label2id={label: i for i, label in enumerate(data.labels)},
    ).to(device)
    optimizer = _optimizer(model, hyper)
    state, best = _Progress(), None
    if checkpoint:
        if checkpoint["labels"] != data.labels:
            raise TrainingError(f"The checkpoint's labels {checkpoint['labels']} differ from the data's {data.labels}.")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = _Progress(**checkpoint["progress"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if (directory / BEST_FILE).is_file():
            best = torch.load(directory / BEST_FILE, map_location="cpu", weights_only=True)
    resumed_from = state.step if checkpoint else None

    trainer = _Trainer(
        model=model,
        tokenizer=tokenizer,
        optimizer=optimizer,
        data=data,
        hyper=hyper,
        options=options,
        device=device,
        deadline=deadline,
        state=state,
        best=best,
        checkpoints=directory,
        recipe={"base": base, "label_names": label_names or {}, "holdout": holdout, "limit": limit, "seed": seed},
        report=report,
    )
    stopped = trainer.run()

    report(92, "saving the model")
    model.load_state_dict(trainer.best)
    model.to("cpu")
    metrics = {
        "method": "fine-tune",
        "heldout_accuracy": state.best_accuracy,
        **data.summary(),
        "seed": seed,
        "stopped": stopped,
        "steps": state.step,
        "epochs": round(state.step / trainer.per_epoch, 2),
        "best_step": state.best_step,
        "train_seconds": round(state.seconds, 1),
        "train_examples_per_second": round(state.examples / state.seconds, 1) if state.seconds else None,
        "device": str(device),
        "hyperparameters": {
            **hyper,
            "epochs": options.epochs,
            "patience": options.patience,
            "max_minutes": options.max_minutes,
            "max_steps": options.max_steps,
            "max_tokens": TRAIN_MAX_TOKENS,
        },
        "history": state.history,
        "checkpoint": str(directory),
        "resumed_from_step": resumed_from,
    }
    relative = Path(name) / version

    def write(partial: Path) -> None:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        meta = {"base": encoder_version.source, "data_sha256": data.sha256, "metrics": metrics}
        (partial / "training.json").write_text(json.dumps(meta, indent=2))

    save_atomically(settings.MODEL_STORE / relative, write)
    created = ModelVersion(
        name=name,
        version=version,
        task=Task.TEXT_CLASSIFICATION,
        backend=Backend.TRANSFORMERS,
        source=f"store:{relative.as_posix()}",
        labels=data.labels,
        metrics=metrics,
        notes=f"{encoder_version} fine-tuned on {data.path.name} ({len(data.train)} examples, "
        f"{metrics['epochs']} epochs, stopped: {stopped}); held-out accuracy {state.best_accuracy:.3f}.",
    )
    return register_trained(created, data=data, actor=actor, how="Fine-tuned", report=report)


def _optimizer(model: torch.nn.Module, hyper: dict) -> torch.optim.AdamW:
    # Biases and LayerNorm weights are not decayed (the usual BERT recipe).
    decayed, plain = [], []
    for parameter_name, parameter in model.named_parameters():
        (plain if parameter.ndim < 2 or "LayerNorm" in parameter_name else decayed).append(parameter)
    return torch.optim.AdamW(
        [{"params": decayed, "weight_decay": hyper["weight_decay"]}, {"params": plain, "weight_decay": 0.0}],
        lr=hyper["learning_rate"],
    )


def _read_checkpoint(directory: Path) -> dict:
    if not (directory / CHECKPOINT_FILE).is_file():
        raise TrainingError(f"No checkpoint at {directory / CHECKPOINT_FILE}.")
    return torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


class _Trainer:
    def __init__(
        self, *, model, tokenizer, optimizer, data: TrainingData, hyper: dict, options: FineTuning, device,
        deadline: float | None, state: _Progress, best: dict | None, checkpoints: Path, recipe: dict, report: Progress,
    ):  # fmt: skip
        self.model, self.tokenizer, self.optimizer = model, tokenizer, optimizer
        self.hyper, self.options, self.device = hyper, options, device
        self.seed = recipe["seed"]
        self.state = state
        self.best = best
        self.best_unsaved = False
        self.data_sha256 = data.sha256
        self.checkpoints = checkpoints
        self.recipe = recipe  # what a resumed run reads the data with
        self.report = report
        index = {label: i for i, label in enumerate(data.labels)}
        self.train_ids = self._tokenize([e.text for e in data.train])
        self.train_y = [index[e.label] for e in data.train]
        self.validation_ids = self._tokenize([e.text for e in data.validation])
        self.validation_y = [index[e.label] for e in data.validation]
        self.lengths = [len(ids) for ids in self.train_ids]
        per_epoch = len(self.epoch_batches(0))
        planned = per_epoch * options.epochs
        if options.max_steps:
            planned = min(planned, options.max_steps)
        self.per_epoch = per_epoch
        self.planned = max(planned, 1)
        self.schedule = _Schedule(self.planned, hyper["warmup"])
        self.deadline = deadline
        self.validation_s: float | None = None
        self.run_steps, self.last_report = 0, 0.0
        # The step time of the last steps: the machine's load changes, and one batch of long
        # sentences takes several times as long as one of short ones.
        self.recent_steps: deque[float] = deque(maxlen=STEP_TIME_WINDOW)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=TRAIN_MAX_TOKENS)["input_ids"]

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        # Seeded per epoch, so a resumed run cuts the same batches and skips those already done.
        return length_bucketed_batches(
            self.lengths, self.hyper["batch_size"], random.Random(self.seed * 100_003 + epoch)
        )

    def run(self) -> str:
        """Train until the epochs are done, the validation split stops improving, or a budget ends; the reason."""
        state = self.state
        stopped = ""
        while not stopped:
            if state.epoch >= self.options.epochs:
                stopped = "completed"
                break
            for batch in self.epoch_batches(state.epoch)[state.batch :]:
                stopped = self._limit()
                if stopped:
                    break
                self._step(batch)
            else:
                state.epoch += 1
                state.batch = 0
                self._validate()
                self.checkpoint()
                if state.epoch < self.options.epochs and state.stale_epochs >= self.options.patience:
                    stopped = f"early stop: no gain on the validation split in {state.stale_epochs} epoch(s)"
        if state.batch or self.best is None:
            self._validate()  # stopped within an epoch: measure what the partial epoch gave
            self.checkpoint()
        return stopped

    def _limit(self) -> str:
        if self.options.max_steps and self.state.step >= self.options.max_steps:
            return f"step budget ({self.options.max_steps} steps)"
        if self.deadline is not None and (time.monotonic() >= self.deadline or self.state.step >= self.schedule.total):
            return f"time budget ({self.options.max_minutes:g} min)"
        return ""

    def _step(self, batch: list[int]) -> None:
        state = self.state
        began = time.monotonic()
        for group in self.optimizer.param_groups:
            group["lr"] = self.hyper["learning_rate"] * self.schedule(state.step)
        input_ids, attention_mask = self._padded([self.train_ids[i] for i in batch])
        labels = torch.tensor([self.train_y[i] for i in batch], device=self.device)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        elapsed = time.monotonic() - began
        state.loss = value if state.loss is None else 0.98 * state.loss + 0.02 * value
        state.step += 1
        state.batch += 1
        state.examples += len(batch)
        state.seconds += elapsed
        self.run_steps += 1
        self.recent_steps.append(elapsed)
        if self.deadline is not None and self.run_steps % REPLAN_EVERY_STEPS == 0:
            self._fit_schedule_to_budget()
        self._report()

    def step_s(self) -> float:
        return sum(self.recent_steps) / len(self.recent_steps)

    def _padded(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(row) for row in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([row + [pad] * (width - len(row)) for row in rows], device=self.device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], device=self.device)
        return input_ids, mask

    def _fit_schedule_to_budget(self) -> None:
        """Set the total so the decay reaches zero when the budget ends, leaving time to validate at
        the end and at each epoch boundary on the way, and to save; never beyond the planned epochs."""
        per_step = self.step_s()
        validation_s = self.validation_s or len(self.validation_ids) / self.hyper["batch_size"] * per_step / 3
        left = self.deadline - time.monotonic() - 2 * validation_s - SAVE_RESERVE_S
        steps = max(0, int(left / per_step))
        boundaries = (self.state.step + steps) // self.per_epoch - self.state.step // self.per_epoch
        steps = max(0, int((left - boundaries * validation_s) / per_step))
        self.schedule.total = min(self.planned, self.state.step + steps)

    def _validate(self) -> None:
        state = self.state
        self.report(self._percent(), f"{self._where()} · measuring the validation split")
        began = time.monotonic()
        accuracy = self.accuracy()
        self.validation_s = time.monotonic() - began
        state.history.append(
            {
                "step": state.step,
                "epoch": round(state.step / self.per_epoch, 2),
                "loss": round(state.loss, 4) if state.loss is not None else None,
                "validation_accuracy": round(accuracy, 4),
            }
        )
        if state.best_accuracy is None or accuracy > state.best_accuracy:
            state.best_accuracy, state.best_step, state.stale_epochs = round(accuracy, 4), state.step, 0
            self.best = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best_unsaved = True
        elif not state.batch:
            state.stale_epochs += 1
        self._report(force=True)

    def accuracy(self) -> float:
        self.model.eval()
        order = sorted(range(len(self.validation_ids)), key=lambda i: len(self.validation_ids[i]))
        correct = 0
        size = self.hyper["batch_size"] * 2
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                input_ids, attention_mask = self._padded([self.validation_ids[i] for i in chunk])
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                    logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
                predicted = logits.argmax(dim=-1).tolist()
                correct += sum(p == self.validation_y[i] for p, i in zip(predicted, chunk, strict=True))
        return correct / len(order)

    def checkpoint(self) -> None:
        """Everything a later run needs to continue, written beside and renamed (a crash keeps the last one)."""
        directory = self.checkpoints
        directory.mkdir(parents=True, exist_ok=True)
        if self.best_unsaved:
            _save_replacing(self.best, directory / BEST_FILE)
            self.best_unsaved = False
        checkpoint = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "progress": asdict(self.state),
            "hyper": self.hyper,
            "labels": [self.model.config.id2label[i] for i in range(self.model.config.num_labels)],
            "base": self.recipe["base"],
            "data": {**self.recipe, "sha256": self.data_sha256},
            "torch_rng": torch.get_rng_state(),
        }
        _save_replacing(checkpoint, directory / CHECKPOINT_FILE)

    def _percent(self) -> int:
        return min(90, 2 + 88 * self.state.step // max(1, self.schedule.total))

    def _where(self) -> str:
        state = self.state
        epoch = min(state.epoch + 1, self.options.epochs)
        return f"epoch {epoch}/{self.options.epochs} · step {state.step}/{self.schedule.total}"

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_report < REPORT_EVERY_S:
            return
        self.last_report = now
        state = self.state
        parts = [self._where()]
        if state.loss is not None:
            parts.append(f"loss {state.loss:.3f}")
        if state.best_accuracy is not None:
            parts.append(f"val acc {state.history[-1]['validation_accuracy']:.3f} (best {state.best_accuracy:.3f})")
        if self.recent_steps:
            left = (self.schedule.total - state.step) * self.step_s()
            parts.append(f"{math.ceil(left / 60)} min left")
        self.report(self._percent(), " · ".join(parts))


def _save_replacing(value, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    torch.save(value, partial)
    os.replace(partial, path)
