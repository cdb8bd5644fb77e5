"""The chat body forwarded as inference/upstream_client.py sends it: one pooled urllib3 client
per process, the body passed through, the upstream's JSON answer returned as it came."""

import urllib3
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

# The gateway's pool (inference/upstream_client.py, UPSTREAM_POOL_SIZE's default) and timeouts
# (the bench's providers: 10 s).
_http = urllib3.PoolManager(num_pools=32, maxsize=256, block=False, retries=False)
_TIMEOUT = urllib3.Timeout(connect=10.0, read=10.0)


@csrf_exempt
def forward(request):
    response = _http.request(
        "POST",
        settings.UPSTREAM_URL,
        body=request.body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        timeout=_TIMEOUT,
    )
    return HttpResponse(response.data, status=response.status, content_type="application/json")


def ready(request):
    return JsonResponse({"status": "ready"})
