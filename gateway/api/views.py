"""The base of the gateway's API views: DRF's APIView, minus the garbage it leaves.

DRF ties a request's view, its Request and its Response together in reference cycles
(`Request.parser_context` holds the Request and the view; the view holds the Request; a
Response's `renderer_context` holds both). Only the garbage collector frees cycles, and under
sustained load its older-generation passes stop a worker for hundreds of milliseconds
(docs/benchmarks.md). This view renders its response before it returns and then drops those
references, so a finished request is freed by reference counting alone.
"""

from django.template.response import SimpleTemplateResponse
from rest_framework import views


class LeanAPIView(views.APIView):
    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        if isinstance(response, SimpleTemplateResponse):
            response.render()
            response.renderer_context = None
        if isinstance(self.request, views.Request):
            self.request.parser_context = None
        self.request = self.args = self.kwargs = None
        return response
