import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference import pool
from inference.batching import MicroBatcher, Overloaded
from inference.models import ModelVersion
from tests.factories import ModelVersionFactory


class Recorder:
    """A stand-in model that records the batches it is given (the batcher under test is real)."""

    def __init__(self, fail_on=None, gate=None):
        self.batches = []
        self.fail_on = fail_on
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, texts):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        self.batches.append(list(texts))
        if self.fail_on and self.fail_on in texts:
            raise ValueError(f"cannot handle {self.fail_on!r}")
        return [f"out:{text}" for text in texts]


def _wait_until(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _batcher(model, **options):
    defaults = {"name": "test", "max_batch_size": 8, "max_wait_s": 0.05, "queue_size": 100}
    return MicroBatcher(model, **{**defaults, **options})


def test_each_caller_gets_its_own_result_from_shared_batches():
    model = Recorder()
    batcher = _batcher(model)

    with ThreadPoolExecutor(max_workers=40) as executor:
        results = list(executor.map(lambda i: batcher.submit(f"t{i}", timeout_s=10), range(40)))

    assert results == [f"out:t{i}" for i in range(40)]
    assert sum(len(batch) for batch in model.batches) == 40
    assert len(model.batches) < 40  # concurrent inputs were gathered
    assert max(len(batch) for batch in model.batches) <= 8


def test_batch_size_follows_the_setting():
    gate = threading.Event()
    model = Recorder(gate=gate)
    batcher = _batcher(model, max_batch_size=3, max_wait_s=1.0)

    with ThreadPoolExecutor(max_workers=7) as executor:
        futures = [executor.submit(batcher.submit, f"t{i}", 10) for i in range(7)]
        gate.set()
        assert sorted(f.result() for f in futures) == sorted(f"out:t{i}" for i in range(7))

    assert all(len(batch) <= 3 for batch in model.batches)


def test_with_no_wait_a_lone_input_runs_alone():
    model = Recorder()
    batcher = _batcher(model, max_wait_s=0)

    for i in range(3):
        batcher.submit(f"t{i}", timeout_s=10)

    assert model.batches == [["t0"], ["t1"], ["t2"]]


def test_a_failing_input_fails_alone():
    model = Recorder(fail_on="bad")
    batcher = _batcher(model, max_wait_s=0.2)
    texts = ["a", "bad", "c", "d"]

    with ThreadPoolExecutor(max_workers=4) as executor:
        futures = {text: executor.submit(batcher.submit, text, 10) for text in texts}

    with pytest.raises(ValueError, match="bad"):
        futures["bad"].result()
    assert [futures[t].result() for t in ("a", "c", "d")] == ["out:a", "out:c", "out:d"]


def test_full_queue_refuses_new_inputs():
    gate = threading.Event()
    model = Recorder(gate=gate)
    batcher = _batcher(model, max_batch_size=1, max_wait_s=0, queue_size=2)
    with ThreadPoolExecutor(max_workers=3) as executor:
        # One input is in the model, two more fill the queue.
        busy = [executor.submit(batcher.submit, "t0", 10)]
        _wait_until(model.entered.is_set)
        busy += [executor.submit(batcher.submit, f"t{i}", 10) for i in (1, 2)]
        _wait_until(lambda: batcher._queue.qsize() == 2)

        with pytest.raises(Overloaded, match="queued"):
            batcher.submit("one too many", timeout_s=10)

        gate.set()
        assert [f.result() for f in busy] == ["out:t0", "out:t1", "out:t2"]


def test_input_past_its_deadline_is_refused_and_never_run():
    gate = threading.Event()
    model = Recorder(gate=gate)
    batcher = _batcher(model, max_batch_size=1, max_wait_s=0)
    with ThreadPoolExecutor(max_workers=1) as executor:
        blocker = executor.submit(batcher.submit, "blocker", 10)
        _wait_until(model.entered.is_set)

        with pytest.raises(Overloaded, match="did not answer"):
            batcher.submit("late", timeout_s=0.05)

        gate.set()
        assert blocker.result() == "out:blocker"
    batcher.submit("after", timeout_s=10)
    assert ["late"] not in model.batches


@pytest.mark.django_db
def test_real_model_gives_the_same_answer_batched_as_alone():
    version = ModelVersionFactory(version="batch-check", max_batch_size=16, max_batch_wait_ms=50)
    texts = [f"review number {i}: {'great fun' if i % 2 else 'utterly tedious'}" for i in range(16)]
    batcher = pool.batcher_for(version)
    alone = [batcher.submit(text, timeout_s=30).result for text in texts]

    with ThreadPoolExecutor(max_workers=16) as executor:
        together = list(executor.map(lambda t: batcher.submit(t, timeout_s=30).result, texts))

    for one, batched in zip(alone, together, strict=True):
        assert batched["label"] == one["label"]
        assert batched["confidence"] == pytest.approx(one["confidence"], abs=1e-4)


@pytest.mark.django_db
def test_editing_a_version_reloads_it_with_the_new_settings():
    version = ModelVersionFactory(version="reload", max_batch_size=4)
    first = pool.batcher_for(version)

    version.max_batch_size = 2
    version.save()
    second = pool.batcher_for(ModelVersion.objects.get(pk=version.pk))

    assert second is not first
    assert second.max_batch_size == 2


def test_gathered_inputs_run_in_groups_of_similar_length():
    from inference.batching import _Item, by_length

    texts = ["x" * n for n in (5, 200, 6, 7, 190, 8, 5, 210, 6, 180, 7, 9)]
    groups = by_length([_Item(text=t, deadline=0) for t in texts])

    lengths = [[len(item.text) for item in group] for group in groups]
    # The short ones and the long ones: not one pass padded to 210, nor twelve passes.
    assert lengths == [[5, 5, 6, 6, 7, 7, 8, 9], [180, 190, 200, 210]]


def test_inputs_of_one_length_stay_in_one_pass():
    from inference.batching import _Item, by_length

    groups = by_length([_Item(text="y" * 40, deadline=0) for _ in range(32)])

    assert [len(group) for group in groups] == [32]
