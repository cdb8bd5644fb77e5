from django.urls import path

from inference.batches import views

urlpatterns = [
    path("api/v1/batches", views.BatchCreateApi.as_view(), name="batch-create"),
    path("api/v1/batches/<uuid:job_id>", views.BatchDetailApi.as_view(), name="batch-detail"),
    path("api/v1/batches/<uuid:job_id>/results", views.BatchResultsApi.as_view(), name="batch-results"),
    path(
        "api/v1/batches/<uuid:job_id>/results.jsonl", views.BatchResultsJsonlApi.as_view(), name="batch-results-jsonl"
    ),
    path("api/v1/batches/<uuid:job_id>/cancel", views.BatchCancelApi.as_view(), name="batch-cancel"),
    # The original service's paths, kept for its clients.
    path("batch_predict", views.SeedBatchPredictApi.as_view(), name="seed-batch-predict"),
    path("batch_result/<uuid:task_id>", views.SeedBatchResultApi.as_view(), name="seed-batch-result"),
]
