from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from experiments.feedback import feedback_record
from experiments.serializers import FeedbackRequest, FeedbackResponse
from gateway.api.views import LeanAPIView


class FeedbackView(LeanAPIView):
    # No endpoint scope: any valid key may report outcomes, and only on its own requests.
    scope = None

    @extend_schema(request=FeedbackRequest, responses=FeedbackResponse)
    def post(self, request):
        params = FeedbackRequest(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        feedback, created = feedback_record(
            key=request.auth, request_id=data["request_id"], label=data.get("label", ""), score=data.get("score")
        )
        answered = feedback.request.output_label
        return Response(
            {
                "request_id": str(feedback.request_uuid),
                "label": feedback.label,
                "score": feedback.score,
                "correct": feedback.label == answered if feedback.label and answered else None,
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
