"""Every model request — local or upstream; classify, embed or chat — is composed here.

Before `answer` runs, DRF has authenticated the key (gateway.keys.authentication) and
counted its requests per minute (gateway.limits.rate_limits); after the view returns, the
middleware records the request (gateway.record.middleware). In between, in this order:

    plan     inference.planning.plan           scope, experiment variant, routing rule, fallbacks, shadows
    check    runner.check                      input bounds of the chosen version
    lookup   gateway.caching.response_cache    a cached answer skips admit, run, settle, filter and store
    admit    gateway.limits.admission          reserve tokens and cost against limits and budgets
    run      runner.serve                      inference.runners.local (micro-batcher) or .upstream
                                               (retries, circuit breaker, fallbacks)
    settle   Reservation.settle                the real tokens and cost replace the estimate
    stale    Entry.stale_if_error              only when every candidate failed: a cached answer past
                                               its freshness, within the version's window; else the error
    filter   gateway.filters.content           SSNs, card numbers, operators' patterns (content_filter)
    store    Entry.store                       the filtered answer, for the next identical request
    shadow   experiments.shadow.mirror         copies for shadow variants, off the request path

A stream is filtered as it is relayed (gateway.filters.content.StreamFilter) and never cached.

docs/architecture.md draws the path and says where to add a step, a backend or an endpoint.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType

from django.conf import settings

from experiments import shadow
from gateway.api.errors import GatewayError, ModelFailed, ModelUnavailable, UpstreamFailed, UpstreamUnavailable
from gateway.caching import response_cache
from gateway.filters import content
from gateway.limits import admission
from gateway.record.context import RequestContext
from inference import planning
from inference.backends import Output
from inference.models import ModelVersion, Task
from inference.runners import local, upstream

# What "every candidate failed" raises: the errors a stale answer may stand in for.
EVERY_CANDIDATE_FAILED = (UpstreamFailed, UpstreamUnavailable, ModelFailed, ModelUnavailable)


@dataclass(frozen=True)
class Call:
    """One model request, whatever endpoint it came through."""

    task: str
    model_ref: str
    texts: list[str]  # what the model reads: the texts to classify or embed, or a chat's message text
    body: dict = field(default_factory=dict)  # the OpenAI-shaped body an upstream receives
    user_id: str | None = None  # the experiment unit the caller names (X-User-ID)
    cache_control: str = ""  # the client's Cache-Control

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)


@dataclass(frozen=True)
class Answer:
    version: ModelVersion
    result: list[Output] | bytes  # a local model's outputs, or an upstream's JSON body as it sent it


def answer(ctx: RequestContext, call: Call) -> Answer:
    plan = _plan(ctx, call)
    runner = _runner_for(plan.primary)
    runner.check(plan.primary, call.texts)
    ctx.input_text = call.prompt
    policy = content.policy_for(ctx, plan.primary)
    entry = response_cache.entry(
        ctx,
        plan.primary,
        task=call.task,
        cache_control=call.cache_control,
        filtered_as=policy.fingerprint,
        **runner.cache_key(call.texts, call.body),
    )
    if (cached := entry.lookup()) is not None:
        result = runner.from_cache(cached)
    else:
        try:
            with admission.admitted(ctx, **runner.estimate(plan.versions, call.texts, call.body)):
                served = runner.serve(ctx, plan.versions, call.texts, call.body)
        except EVERY_CANDIDATE_FAILED as exc:
            result = runner.from_cache(_stale_or_raise(ctx, plan.primary, entry, exc))
        else:
            result = content.filter_answer(ctx, policy, served)
            entry.store(runner.to_cache(result))
    shadow.mirror(ctx, plan.shadows, call.texts)
    return Answer(ctx.model_version, result)  # type: ignore[arg-type]  # the plan set it


def stream(ctx: RequestContext, call: Call) -> Iterator[bytes]:
    """A streamed chat completion as SSE bytes: never cached; its reservation is settled when
    the stream ends, however it ends."""
    plan = _plan(ctx, call)
    ctx.input_text = call.prompt
    policy = content.policy_for(ctx, plan.primary)
    reservation = admission.reserve(ctx, **upstream.estimate(plan.versions, call.texts, call.body))
    try:
        opened = upstream.open_stream(ctx, plan.versions, call.body)
    except BaseException:
        reservation.settle()
        raise
    guard = content.StreamFilter(ctx, policy) if policy.active else None
    return upstream.relay(ctx, opened, call.body, call.prompt, reservation, guard)


def route(ctx: RequestContext, *, task: str, model_ref: str | None) -> ModelVersion:
    """The version a request with this key would run on; batch jobs pin it at submission."""
    return _plan(ctx, Call(task=task, model_ref=model_ref or default_model(task), texts=[])).primary


def default_model(task: str) -> str:
    defaults: dict[str, str] = {
        Task.TEXT_CLASSIFICATION: settings.GATEWAY_DEFAULT_CLASSIFIER,
        Task.EMBEDDINGS: settings.GATEWAY_DEFAULT_EMBEDDINGS,
        Task.CHAT: settings.GATEWAY_DEFAULT_CHAT,
    }
    return defaults[task]


def _stale_or_raise(ctx: RequestContext, primary: ModelVersion, entry, error: GatewayError):
    """RFC 5861's stale-if-error: a cached answer past its freshness, within the version's
    window, answers as the version that cached it; without one the error stands."""
    stale = entry.stale_if_error()
    if stale is None:
        raise error
    ctx.set_version(primary)
    return stale


def _plan(ctx: RequestContext, call: Call) -> planning.Plan:
    return planning.plan(
        ctx,
        task=call.task,
        model_ref=call.model_ref,
        prompt=call.prompt,
        max_tokens=call.body.get("max_tokens"),
        user_id=call.user_id,
    )


def _runner_for(version: ModelVersion) -> ModuleType:
    return local if version.is_local else upstream
