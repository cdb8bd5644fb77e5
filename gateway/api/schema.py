"""The OpenAPI schema's error answers: every operation may answer the gateway's error shape
(gateway/api/errors.py), whatever the status, so clients and the schema tests can read it."""

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "request_id"],
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "request_id": {"type": "string", "nullable": True},
                "fields": {"type": "object", "description": "Per field, what is wrong with it."},
            },
        }
    },
}


def document_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: the error envelope as each operation's `default` answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            operation.setdefault("responses", {}).setdefault(
                "default",
                {
                    "description": "An error: 4xx for the caller's to fix, 5xx for the gateway's or a model's.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
    return result
