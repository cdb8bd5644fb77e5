"""Admin permissions by construction: every custom action declares the permission it needs, a
staff user who may only view is refused each one, a user given that permission may run it.

The actions are found in the admin site's registry, so a new action without `permissions=`,
or without a case below, fails here."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client

from experiments.models import Experiment, ExperimentStatus, Feedback
from gateway.models import APIKey
from inference.batches.models import BatchItem, BatchJob, ItemStatus, JobStatus
from inference.models import ModelVersion, Provider, Status
from tests.factories import (
    APIKeyFactory,
    ExperimentFactory,
    ModelVersionFactory,
    RequestLogFactory,
    StaffUserFactory,
    VariantFactory,
    started_experiment,
)

pytestmark = pytest.mark.usefixtures("default_models")


def _custom_actions() -> list[tuple[str, str]]:
    """(model label, action name) of every action a ModelAdmin adds (the site-wide
    delete_selected declares its own permission in Django)."""
    return sorted(
        (model._meta.label, action if isinstance(action, str) else action.__name__)
        for model, model_admin in admin.site._registry.items()
        for action in model_admin.actions or ()
    )


def _model_admin(label: str) -> admin.ModelAdmin:
    return admin.site._registry[apps.get_model(label)]


def _changelist(label: str) -> str:
    app_label, model = label.lower().split(".")
    return f"/admin/{app_label}/{model}/"


def _production_sentiment() -> ModelVersion:
    return ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)


def _running_experiment() -> Experiment:
    return started_experiment(("control", _production_sentiment(), 50), ("treatment", ModelVersionFactory(), 50))


def _draft_experiment() -> Experiment:
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, name="control", model_version=_production_sentiment(), is_control=True)
    VariantFactory(experiment=experiment, name="treatment")
    return experiment


def _experiment_with_a_winner() -> Experiment:
    candidate = ModelVersionFactory(version="candidate")
    experiment = started_experiment(("control", _production_sentiment(), 50), ("treatment", candidate, 50))
    for variant, version, agree in (("control", _production_sentiment(), 70), ("treatment", candidate, 90)):
        for i in range(100):
            row = RequestLogFactory(
                experiment=experiment, variant=variant, model_version=version, unit=f"{variant}{i}", output_label="POS"
            )
            Feedback.objects.create(request=row, request_uuid=row.request_id, label="POS" if i < agree else "NEG")
    return experiment


def _job(item_status: str) -> BatchJob:
    job = BatchJob.objects.create(
        task="text-classification",
        model_ref="sentiment",
        total_items=1,
        chunk_size=32,
        status=JobStatus.RUNNING,
        failed_items=int(item_status == ItemStatus.FAILED),
    )
    BatchItem.objects.create(job=job, index=0, text="fine", status=item_status)
    return job


def _status(model, pk):
    return model.objects.get(pk=pk).status


@dataclass
class Case:
    permissions: tuple[str, ...]  # beyond view: what the action declares it needs
    setup: Callable  # (request) -> the object the action runs on
    done: Callable  # (obj, response text) -> whether the action had its effect


CASES = {
    ("gateway.APIKey", "revoke_keys"): Case(
        ("gateway.change_apikey",),
        lambda request: APIKeyFactory(),
        lambda key, page: APIKey.objects.get(pk=key.pk).revoked_at is not None,
    ),
    ("inference.ModelVersion", "promote"): Case(
        ("inference.change_modelversion",),
        lambda request: ModelVersionFactory(version="candidate"),
        lambda version, page: _status(ModelVersion, version.pk) == Status.PRODUCTION,
    ),
    ("inference.ModelVersion", "archive"): Case(
        ("inference.change_modelversion",),
        lambda request: ModelVersionFactory(version="old"),
        lambda version, page: _status(ModelVersion, version.pk) == Status.ARCHIVED,
    ),
    ("inference.Provider", "test_connection"): Case(
        ("inference.manage_provider",),
        lambda request: request.getfixturevalue("provider"),
        lambda provider, page: "reachable; models: standin" in page,
    ),
    ("experiments.Experiment", "start"): Case(
        ("experiments.change_experiment",),
        lambda request: _draft_experiment(),
        lambda experiment, page: _status(Experiment, experiment.pk) == ExperimentStatus.RUNNING,
    ),
    ("experiments.Experiment", "pause"): Case(
        ("experiments.change_experiment",),
        lambda request: _running_experiment(),
        lambda experiment, page: _status(Experiment, experiment.pk) == ExperimentStatus.PAUSED,
    ),
    ("experiments.Experiment", "stop"): Case(
        ("experiments.change_experiment",),
        lambda request: _running_experiment(),
        lambda experiment, page: _status(Experiment, experiment.pk) == ExperimentStatus.STOPPED,
    ),
    ("experiments.Experiment", "promote_winner"): Case(
        ("experiments.change_experiment", "inference.change_modelversion"),
        lambda request: _experiment_with_a_winner(),
        lambda experiment, page: _status(Experiment, experiment.pk) == ExperimentStatus.STOPPED,
    ),
    ("batches.BatchJob", "cancel_jobs"): Case(
        ("batches.change_batchjob",),
        lambda request: _job(ItemStatus.PENDING),
        lambda job, page: _status(BatchJob, job.pk) == JobStatus.CANCELLED,
    ),
    ("batches.BatchJob", "retry_failed_items"): Case(
        ("batches.change_batchjob",),
        lambda request: _job(ItemStatus.FAILED),
        lambda job, page: job.items.get().status == ItemStatus.PENDING,
    ),
}


def _perm(dotted: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _browser(*permissions: str) -> Client:
    """A staff user with every model's view permission (and no other), plus these permissions."""
    user = StaffUserFactory()
    viewing = [
        p for p in Permission.objects.select_related("content_type") if p.codename == f"view_{p.content_type.model}"
    ]
    user.user_permissions.set([*viewing, *(_perm(p) for p in permissions)])
    browser = Client()
    browser.force_login(user)
    return browser


def _run(browser: Client, label: str, action: str, obj) -> tuple[str, str]:
    """(the changelist before, the page after running the action on obj)."""
    listing = browser.get(_changelist(label))
    assert listing.status_code == 200  # viewing is allowed either way
    response = browser.post(_changelist(label), {"action": action, "_selected_action": [obj.pk]}, follow=True)
    return listing.content.decode(), response.content.decode()


def test_every_custom_action_declares_the_permission_it_needs():
    for label, name in _custom_actions():
        model_admin = _model_admin(label)
        needed = getattr(getattr(model_admin, name), "allowed_permissions", ())
        assert needed, f"{label}.{name} declares no permissions="
        for permission in needed:
            assert callable(getattr(model_admin, f"has_{permission}_permission", None)), (label, name, permission)


# Actions that only read (they change nothing): anyone who may view the list may run them.
READ_ONLY_ACTIONS = {("inference.ModelVersion", "compare_versions"), ("inference.Evaluation", "compare")}


def test_every_custom_action_has_a_permission_case_here():
    assert set(_custom_actions()) == set(CASES) | READ_ONLY_ACTIONS


@pytest.mark.parametrize(("label", "action"), sorted(READ_ONLY_ACTIONS), ids=lambda value: str(value).split(".")[-1])
def test_a_read_only_action_needs_only_the_view_permission(label, action):
    assert list(getattr(_model_admin(label), action).allowed_permissions) == ["view"]


@pytest.mark.parametrize(("label", "action"), sorted(CASES), ids=lambda value: str(value).split(".")[-1])
def test_a_view_only_operator_is_neither_offered_nor_allowed_the_action(request, label, action):
    case = CASES[(label, action)]
    obj = case.setup(request)

    listing, page = _run(_browser(), label, action, obj)

    assert f'value="{action}"' not in listing
    assert not case.done(obj, page)


@pytest.mark.parametrize(("label", "action"), sorted(CASES), ids=lambda value: str(value).split(".")[-1])
def test_an_operator_given_the_actions_permission_runs_it(request, label, action):
    case = CASES[(label, action)]
    obj = case.setup(request)

    listing, page = _run(_browser(*case.permissions), label, action, obj)

    assert f'value="{action}"' in listing
    assert case.done(obj, page), page[-3000:]


def test_promoting_the_winner_also_needs_the_permission_to_change_versions():
    experiment = _experiment_with_a_winner()

    listing, _ = _run(_browser("experiments.change_experiment"), "experiments.Experiment", "promote_winner", experiment)

    assert 'value="promote_winner"' not in listing
    assert 'value="stop"' in listing
    assert _status(Experiment, experiment.pk) == ExperimentStatus.RUNNING


def test_providers_are_changed_only_with_their_own_permission(provider):
    change = f"/admin/inference/provider/{provider.pk}/change/"
    form = {"name": provider.name, "base_url": "https://api.example.com/v1", "api_key_env": "STANDIN_API_KEY"}
    form |= {"timeout_s": "5", "max_retries": "1", "allowed_parameters": json.dumps(provider.allowed_parameters)}
    usual = _browser("inference.change_provider", "inference.add_provider", "inference.delete_provider")
    manager = _browser("inference.manage_provider")

    assert usual.get("/admin/inference/provider/add/").status_code == 403
    assert usual.post(change, form).status_code == 403
    assert 'name="base_url"' not in usual.get(change).content.decode()  # read-only for them
    assert Provider.objects.get(pk=provider.pk).base_url == provider.base_url
    assert manager.post(change, form).status_code == 302
    assert Provider.objects.get(pk=provider.pk).base_url == "https://api.example.com/v1"


def test_a_new_keys_secret_is_shown_once_never_cached_and_never_in_a_cookie():
    browser = _browser("gateway.add_apikey", "gateway.change_apikey")

    response = browser.post(
        "/admin/gateway/apikey/add/",
        {
            "name": "billing-service",
            "is_active": "on",
            "allowed_endpoints": "[]",
            "allowed_models": "[]",
            "budget_period": "month",
            "budget_alert_percent": "80",
        },
    )

    page = response.content.decode()
    (shown,) = set(re.findall(r"gw_[A-Za-z0-9]{8}\.[A-Za-z0-9_-]{43}", page))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert all(shown not in morsel.value for morsel in response.cookies.values())
    assert all(shown.split(".")[1] not in morsel.value for morsel in browser.cookies.values())
    key = APIKey.objects.get(name="billing-service")
    assert shown.startswith(f"gw_{key.prefix}.")
    # Nothing fetched afterwards shows it again.
    for path in ("/admin/gateway/apikey/", f"/admin/gateway/apikey/{key.pk}/change/"):
        assert shown.split(".")[1] not in browser.get(path).content.decode()


def test_dashboards_need_their_own_permission():
    viewer = _browser()
    analyst = _browser("observability.view_dashboards")

    assert viewer.get("/admin/dashboards/").status_code == 403
    assert viewer.get("/admin/dashboards/cost/?export=keys").status_code == 403
    assert 'id="dashboards-module"' not in viewer.get("/admin/").content.decode()
    assert analyst.get("/admin/dashboards/").status_code == 200
    assert 'id="dashboards-module"' in analyst.get("/admin/").content.decode()
