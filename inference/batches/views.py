import json

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from gateway.api.parsers import FormEncodedJSONParser, JSONParser
from gateway.api.views import LeanAPIView
from inference.batches import selectors, services
from inference.batches.models import BatchJob, JobStatus
from inference.batches.serializers import (
    BatchCreateRequest,
    BatchJobResponse,
    BatchResultResponse,
    SeedBatchResultResponse,
)


class ResultsPage(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


def _submit(request, params: BatchCreateRequest) -> BatchJob:
    params.is_valid(raise_exception=True)
    return services.batch_job_submit(
        ctx=request.ctx,
        key=request.auth,
        texts=params.validated_data["texts"],
        task=params.validated_data["task"],
        model_ref=params.validated_data.get("model"),
    )


class BatchCreateApi(LeanAPIView):
    scope = "batches"
    parser_classes = [JSONParser, FormEncodedJSONParser, MultiPartParser]

    @extend_schema(request=BatchCreateRequest, responses={202: BatchJobResponse})
    def post(self, request):
        job = _submit(request, BatchCreateRequest(data=request.data))
        location = reverse("batch-detail", kwargs={"job_id": job.pk})
        return Response(BatchJobResponse(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class BatchDetailApi(LeanAPIView):
    scope = "batches"

    @extend_schema(responses=BatchJobResponse)
    def get(self, request, job_id):
        return Response(BatchJobResponse(selectors.batch_job_visible_to(request.auth, job_id)).data)


class BatchCancelApi(LeanAPIView):
    scope = "batches"

    @extend_schema(request=None, responses=BatchJobResponse)
    def post(self, request, job_id):
        job = services.batch_job_cancel(job=selectors.batch_job_visible_to(request.auth, job_id))
        return Response(BatchJobResponse(job).data)


class BatchResultsApi(LeanAPIView):
    scope = "batches"

    @extend_schema(responses=BatchResultResponse(many=True))
    def get(self, request, job_id):
        job = selectors.batch_job_visible_to(request.auth, job_id)
        paginator = ResultsPage()
        page = paginator.paginate_queryset(selectors.batch_items_in_order(job), request, view=self)
        return paginator.get_paginated_response(BatchResultResponse(page, many=True, context={"job": job}).data)


class BatchResultsJsonlApi(LeanAPIView):
    """Every result as one JSON object per line, streamed, for jobs too big to page through."""

    scope = "batches"

    @extend_schema(responses={(200, "application/x-ndjson"): BatchResultResponse})
    def get(self, request, job_id):
        job = selectors.batch_job_visible_to(request.auth, job_id)
        lines = (
            json.dumps(BatchResultResponse(item, context={"job": job}).data) + "\n"
            for item in selectors.batch_items_in_pages(job)
        )
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="batch-{job.pk}.jsonl"'
        return response


class SeedBatchPredictApi(LeanAPIView):
    """The original service's `POST /batch_predict`: a JSON list of texts in, `{"task_id"}` out."""

    scope = "batches"

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "string"}}},
        responses=inline_serializer("SeedBatchPredictResponse", {"task_id": serializers.UUIDField()}),
    )
    def post(self, request):
        if not isinstance(request.data, list):
            raise ValidationError({"non_field_errors": ["Send a JSON list of texts."]})
        job = _submit(request, BatchCreateRequest(data={"inputs": request.data}))
        return Response({"task_id": str(job.pk)})


class SeedBatchResultApi(LeanAPIView):
    """The original service's `GET /batch_result/{task_id}`: pending until every result is in."""

    scope = "batches"

    @extend_schema(responses=SeedBatchResultResponse)
    def get(self, request, task_id):
        job = selectors.batch_job_visible_to(request.auth, task_id)
        if job.is_active:
            return Response({"status": "pending"})
        if job.status != JobStatus.COMPLETED:
            return Response({"status": job.status, "error": job.error or f"The job was {job.status}."})
        results = [
            item.result
            if item.result is not None
            else {"error": {"type": item.error_type, "message": item.error_message}}
            for item in selectors.batch_items_in_pages(job)
        ]
        return Response({"status": "completed", "results": results})
