from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from experiments.views import FeedbackView
from gateway.api import health
from gateway.metrics import export
from inference import openai_views
from inference.views import EmbeddingsView, PredictView

handler400 = "gateway.api.errors.bad_request"
handler403 = "gateway.api.errors.permission_denied"
handler404 = "gateway.api.errors.not_found"
handler500 = "gateway.api.errors.server_error"

urlpatterns = [
    path("api/v1/predict", PredictView.as_view(), name="predict"),
    path("api/v1/embeddings", EmbeddingsView.as_view(), name="embeddings"),
    path("v1/chat/completions", openai_views.ChatCompletionsView.as_view(), name="openai-chat"),
    path("v1/embeddings", openai_views.EmbeddingsView.as_view(), name="openai-embeddings"),
    path("v1/models", openai_views.ModelsView.as_view(), name="openai-models"),
    path("api/v1/feedback", FeedbackView.as_view(), name="feedback"),
    path("", include("inference.batches.urls")),
    path("api/schema", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    # Interactive docs, their scripts served from drf-spectacular-sidecar's static files (no CDN).
    path(
        "api/docs",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
    path(
        "api/redoc",
        SpectacularRedocView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-redoc",
    ),
    # The original service's paths, kept for its clients.
    path("predict", PredictView.as_view(), name="seed-predict"),
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", export.metrics_view, name="metrics"),
    # Before the admin's own URLs, whose catch-all would answer first.
    path("admin/dashboards/", include("observability.urls")),
    path("admin/", admin.site.urls),
]
