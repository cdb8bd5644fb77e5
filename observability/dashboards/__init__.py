"""The staff dashboards: one module per page, each building a `components.Page` from the
selectors; views.py renders it, or one of its tables as CSV."""

from collections.abc import Callable

from observability.dashboards import cost, keys, model_versions, overview
from observability.dashboards.components import Page
from observability.filters import Filters

# Page id (as in the URL names) -> what builds it.
PAGES: dict[str, Callable[[Filters], Page]] = {
    "overview": overview.build,
    "cost": cost.build,
    "models": model_versions.build,
    "keys": keys.build,
}
