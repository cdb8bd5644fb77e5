"""Local models served as TorchScript traces (inference/backends/traced.py): same answers, GIL-free."""

import logging

import torch
from transformers import AutoModel, AutoTokenizer

from inference.backends.loading import resolve_source
from inference.backends.traced import forward_without_gil
from inference.management.commands.bootstrap import PACKAGED_MODEL


def _packaged():
    path = resolve_source(PACKAGED_MODEL)
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_the_trace_answers_as_the_model_does_for_any_batch_and_length():
    model, tokenizer = _packaged()
    forward = forward_without_gil(model, tokenizer, "last_hidden_state")

    assert isinstance(forward, torch.jit.ScriptModule)
    for texts in (["one"], ["short", "a much longer sentence than the first, padded to its length " * 3]):
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            got = forward(batch["input_ids"], batch["attention_mask"])
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5)


class _Untraceable(torch.nn.Module):
    """Answers with a plain number, which a trace cannot return."""

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"score": int(attention_mask.sum())})()


def test_a_model_that_cannot_be_traced_runs_eagerly(caplog):
    _, tokenizer = _packaged()

    with caplog.at_level(logging.WARNING, logger="inference.backends.traced"):
        forward = forward_without_gil(_Untraceable(), tokenizer, "score")

    assert not isinstance(forward, torch.jit.ScriptModule)
    batch = tokenizer(["two words"], return_tensors="pt")
    assert forward(batch["input_ids"], batch["attention_mask"]) == 4  # [CLS] two words [SEP]
    assert "Could not trace _Untraceable" in caplog.text
