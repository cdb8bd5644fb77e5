"""Sessions, users and messages for the admin and the dashboards, not for the API.

API callers authenticate with keys: a session store, a lazy user and a message storage per
request are work they never use, and the latter two hold their request in a reference cycle
that only the garbage collector frees (docs/benchmarks.md). These are Django's own
middlewares, passed over on the API's paths (GATEWAY_LOGGED_PATH_PREFIXES); theirs
`process_response` already skips a request they did not process.
"""

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware

from gateway.record.request_log import is_logged_path


class BrowserSessionMiddleware(SessionMiddleware):
    def process_request(self, request):
        if not is_logged_path(request.path):
            super().process_request(request)


class BrowserAuthenticationMiddleware(AuthenticationMiddleware):
    def process_request(self, request):
        if not is_logged_path(request.path):
            super().process_request(request)


class BrowserMessageMiddleware(MessageMiddleware):
    def process_request(self, request):
        if not is_logged_path(request.path):
            super().process_request(request)
