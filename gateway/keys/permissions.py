from rest_framework.permissions import BasePermission


class HasEndpointScope(BasePermission):
    """A valid key is required; a key limited to some endpoints gets 403 elsewhere."""

    def has_permission(self, request, view):
        key = request.auth
        if key is None:
            return False  # DRF answers 401: no key was presented
        scope = getattr(view, "scope", None)
        if scope and not key.allows_endpoint(scope):
            self.message = f"This API key may not call the {scope} endpoint."
            return False
        return True
