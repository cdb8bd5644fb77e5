"""The filter step: a policy applied to answers (plain and streamed) and to texts before they
are stored, and the one place a filtering event is counted.

The policy is the planned version's `content_filter`, unless the key overrides it
(`APIKey.content_filter`): `redact` replaces each match with `[REDACTED:<type>]`, `block`
replaces the whole answer with the original service's message, `off` passes it through.
"""

import dataclasses
import hashlib
import json
from collections import Counter
from dataclasses import dataclass

from gateway.caching import snapshot
from gateway.filters import detectors
from gateway.filters.modes import BLOCKED_MESSAGE, FilterMode
from gateway.metrics import families
from gateway.record.context import RequestContext

# Part of every cache key's policy fingerprint: bump it when a built-in detector changes,
# so answers filtered by the former rules are not served.
BUILT_IN_RULES = "ssn+luhn-1"
# Characters of already-sent text a stream keeps for patterns that look behind (\b, (?<=...)).
_LOOKBEHIND_CHARS = 32
_DIGIT_RUNS = detectors.DigitRuns()


@dataclass(frozen=True)
class Policy:
    mode: str
    detectors: tuple
    fingerprint: str  # in the response cache's key: an answer filtered otherwise is never served

    @property
    def active(self) -> bool:
        return self.mode != FilterMode.OFF


def policy_for(ctx: RequestContext, version) -> Policy:
    """The policy for answers of `version` to this request's key; kept on ctx for the texts
    stored later (the request log)."""
    key_mode = getattr(ctx.api_key, "content_filter", "")
    mode = key_mode or (version.content_filter if version is not None else FilterMode.REDACT)
    found, patterns = snapshot.read(("filter_patterns",), _load_patterns)
    ctx.filter_policy = Policy(mode, found, hashlib.sha256(f"{mode}:{patterns}".encode()).hexdigest()[:16])
    return ctx.filter_policy


def filter_text(ctx: RequestContext, policy: Policy, text: str, *, target: str) -> str:
    """`text` as it may be shown or stored; `target` says where (a metric label)."""
    if not policy.active or not text:
        return text
    matches = detectors.find(text, policy.detectors)
    if not matches:
        return text
    record(ctx, policy, matches, target=target)
    return BLOCKED_MESSAGE if policy.mode == FilterMode.BLOCK else _masked(text, matches)


def filter_answer(ctx: RequestContext, policy: Policy, result):
    """A model's answer as the caller (and the cache) receives it: an upstream's chat
    completion (JSON bytes; other upstream bodies carry no text) or a local model's outputs."""
    if not policy.active:
        return result
    if isinstance(result, bytes):
        return _filtered_completion(ctx, policy, result) if b'"choices"' in result else result
    return [_filtered_output(ctx, policy, output) for output in result]


def record(ctx: RequestContext, policy: Policy, matches, *, target: str) -> None:
    """Count a filtering event: the metric and the request's log row, never the text."""
    for kind, count in Counter(match.kind for match in matches).items():
        families.FILTERED.labels(kind, policy.mode, target).inc(count)
        ctx.filtered[kind] = ctx.filtered.get(kind, 0) + count


class StreamFilter:
    """A streamed answer's content, filtered as it passes. Each choice keeps back only the end
    of its text that the next chunk could still turn into a match (`detectors.held_from`), and
    lets it go with the next chunk, the choice's last one, or `rest()`.

    Under `block` a stream cannot take back what it already sent: from its first match on, a
    choice's content is the block message and nothing after it."""

    def __init__(self, ctx: RequestContext, policy: Policy):
        self.ctx = ctx
        self.policy = policy
        self._held: dict[int, str] = {}
        self._sent_tail: dict[int, str] = {}
        # Operators' patterns may match any text and look behind (\b, (?<=...)); the built-in
        # detectors read digits only.
        self._digits_only = not any(isinstance(found, detectors.Pattern) for found in policy.detectors)
        self._blocked: set[int] = set()

    def event(self, chunk: dict, data: bytes) -> bytes | None:
        """The event to send for this upstream chunk: `data` itself unless its content changed;
        None when all it carried is held back."""
        changed, carries = False, bool(chunk.get("usage"))
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            final = choice.get("finish_reason") is not None
            index = choice.get("index", 0)
            if isinstance(content, str) or (final and self._held.get(index)):
                passed = self._pass(index, content or "", final=final)
                if passed != content:
                    delta = choice["delta"] = {**delta, "content": passed}
                    changed = True
            carries = carries or final or any(delta.values())
        if not changed:
            return data
        return json.dumps(chunk).encode() if carries else None

    def rest(self) -> dict | None:
        """A chunk with whatever is still held back (a stream that ended with no finish_reason)."""
        choices = [
            {"index": index, "delta": {"content": self._pass(index, "", final=True)}}
            for index in list(self._held)
            if self._held[index]
        ]
        return {"object": "chat.completion.chunk", "choices": choices} if choices else None

    def _pass(self, index: int, content: str, *, final: bool) -> str:
        if index in self._blocked:
            return ""
        if self._digits_only and index not in self._held and not detectors.has_digit(content):
            return content
        text = self._held.pop(index, "") + content
        sent_tail = self._sent_tail.get(index, "")
        buffer, start = sent_tail + text, len(sent_tail)
        release = len(buffer) if final else detectors.held_from(buffer, self.policy.detectors, start)
        if release == start:  # all of it may still become a match
            if text:
                self._held[index] = text
            return ""
        matches = detectors.find(buffer, self.policy.detectors, start)
        for match in matches:
            if match.start < release < match.end:  # a complete match goes out whole
                release = match.end
        released = [match for match in matches if match.end <= release]
        if released:
            record(self.ctx, self.policy, released, target="stream")
            if self.policy.mode == FilterMode.BLOCK:
                self._blocked.add(index)
                return BLOCKED_MESSAGE
        if release < len(buffer):
            self._held[index] = buffer[release:]
        if not self._digits_only:
            self._sent_tail[index] = buffer[max(0, release - _LOOKBEHIND_CHARS) : release]
        shifted = [dataclasses.replace(m, start=m.start - start, end=m.end - start) for m in released]
        return _masked(buffer[start:release], shifted)


def _load_patterns() -> tuple[tuple, str]:
    from gateway.models import FilterPattern

    rows = list(FilterPattern.objects.filter(enabled=True).order_by("name").values_list("name", "pattern"))
    found = (_DIGIT_RUNS, *(detectors.Pattern(name, pattern) for name, pattern in rows))
    return found, json.dumps([BUILT_IN_RULES, rows])


def _masked(text: str, matches) -> str:
    if not matches:
        return text
    parts, at = [], 0
    for match in matches:
        parts += [text[at : match.start], f"[REDACTED:{match.kind}]"]
        at = match.end
    parts.append(text[at:])
    return "".join(parts)


def _filtered_completion(ctx: RequestContext, policy: Policy, body: bytes) -> bytes:
    data = json.loads(body)
    changed = False
    for choice in data.get("choices") or ():
        message = choice.get("message") or {}
        content = message.get("content")
        if isinstance(content, str) and (filtered := filter_text(ctx, policy, content, target="answer")) != content:
            message["content"] = filtered
            changed = True
    return json.dumps(data).encode() if changed else body


def _filtered_output(ctx: RequestContext, policy: Policy, output):
    result = {
        name: filter_text(ctx, policy, value, target="answer") if isinstance(value, str) else value
        for name, value in output.result.items()
    }
    return output if result == output.result else dataclasses.replace(output, result=result)
