"""The error answers every operation may give, declared in the schema, so that clients (and
the conformance test) know them: drf-spectacular documents only the success answer."""

ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "`detail` for errors about the whole request; otherwise one entry per field named in "
        "the request (nested for nested fields), each a list of messages."
    ),
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
ANY_REQUEST = {
    "401": "Missing or invalid credentials.",
    "403": "The user may not do this (role, or a company that is not active).",
    "404": "No such object in the user's company (also an invalid page cursor).",
    "429": "Too many requests (see Retry-After).",
}
WITH_BODY = {
    "400": "Invalid input: the fields named say what is wrong.",
    "409": "Conflicts with an existing record.",
    "413": "The body is too large.",
    "415": "The body is not JSON.",
}
WITH_QUERY = {"400": "Invalid query parameter: the parameter named says what is wrong."}


def add_error_responses(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: every operation lists the error answers it may give."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            errors = {**ANY_REQUEST, **WITH_QUERY}
            if method in ("post", "put", "patch"):
                errors.update(WITH_BODY)
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                responses.setdefault(status, {"description": description, "content": reference})
    return result
