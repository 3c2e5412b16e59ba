"""The error answers, and the headers behind idempotency and optimistic concurrency, in the
OpenAPI schema: drf-spectacular documents each operation's success only, while a client
generator (and a partner reading the docs) needs every answer an operation can give.

Runs as a drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]).
"""

from crm.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from crm.api.idempotency import MAX_KEY_LENGTH

ERROR = {
    "type": "object",
    "description": "What went wrong, in words meant for the developer.",
    "properties": {"detail": {"type": "string", "description": "The problem."}},
    "required": ["detail"],
}
INVALID = {
    "type": "object",
    "description": "The input at fault: each field (or header, or query parameter) named with "
    "its messages, or `detail` for the request as a whole (e.g. malformed JSON). A bulk call adds "
    "`errors`, each failing record's `index` (from 0) and its field errors.",
    "properties": {
        "detail": {
            "description": "The problem with the request as a whole.",
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        }
    },
    "additionalProperties": {"description": "A field's messages."},
}
STALE = {
    "type": "object",
    "description": "The record changed since the version sent in `If-Match`.",
    "properties": {
        "detail": {"type": "string", "description": "The problem."},
        "version": {"type": "string", "description": "The record's current version."},
    },
    "required": ["detail", "version"],
}
RATE_HEADERS = {
    "X-RateLimit-Limit": "Calls a minute the key may make.",
    "X-RateLimit-Remaining": "Calls left in the current minute.",
    "X-RateLimit-Reset": "Seconds until the current minute's allowance starts again.",
}

WRITES = {"post", "put", "patch", "delete"}


def _versioned(operation: dict, schemas: dict) -> bool:
    """Whether the operation answers with a record that carries a `version` (ETag)."""
    for code in ("200", "201"):
        content = operation.get("responses", {}).get(code, {}).get("content", {})
        ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        if "version" in schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}):
            return True
    return False


def _idempotent(method: str) -> bool:
    """Every POST (a create or a bulk upsert) honours `Idempotency-Key`."""
    return method == "post"


def _errors(method: str, path: str, operation: dict, schemas: dict) -> dict[str, tuple[str, str]]:
    """Status code -> (component, description) for each error the operation can answer."""
    has_body = "requestBody" in operation
    errors = {
        "401": ("Error", "No API key (or session), or one this tenant does not know."),
        "403": ("Error", "The caller's role may not do this, or the key is read-only."),
        "429": ("Error", "Over the key's calls a minute: retry after `Retry-After` seconds."),
    }
    if has_body or operation.get("parameters"):
        errors["400"] = ("ValidationError", "The input is invalid; nothing was changed.")
    if "{" in path:
        errors["404"] = ("Error", "No such record, or one the caller may not see.")
    if has_body:
        errors["413"] = ("Error", "The request body is too large.")
        errors["415"] = ("Error", "The body is not `application/json`.")
    if method in WRITES:
        errors["409"] = (
            "Error",
            "A unique value is taken, or other records depend on the one deleted.",
        )
    # Every deletable resource is versioned; a DELETE answers no record to tell it by.
    if method == "delete" or (method in {"put", "patch"} and _versioned(operation, schemas)):
        errors["412"] = ("PreconditionFailed", "`If-Match` names a version that is not current.")
    if _idempotent(method):
        errors["422"] = (
            "ValidationError",
            f"The `{IDEMPOTENCY_HEADER}` was used before for a different request.",
        )
    return errors


def _header(name: str, description: str, maximum: int | None = None) -> dict:
    schema = {"type": "string", "minLength": 1}
    if maximum is not None:
        schema["maxLength"] = maximum
    return {
        "in": "header",
        "name": name,
        "required": False,
        "description": description,
        "schema": schema,
    }


def document_errors(result, generator, request, public):
    """Add to every operation its error answers (JSON bodies), the rate-limit headers, and the
    `Idempotency-Key` and `If-Match` request headers where they apply."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(Error=ERROR, ValidationError=INVALID, PreconditionFailed=STALE)
    rate_headers = {
        name: {"schema": {"type": "integer"}, "description": text}
        for name, text in RATE_HEADERS.items()
    }
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "path":
                    continue
                if parameter["name"] == "id":
                    # The route takes any segment so that a wrong id gets a JSON 404 (see
                    # crm.api.viewsets); ids are whole numbers.
                    parameter["schema"] = {"type": "integer"}
                    parameter.setdefault("description", "The record's id.")
                else:
                    parameter.setdefault(
                        "description", "The record's id in your system (`external_id`)."
                    )
            responses = operation.setdefault("responses", {})
            for code, (component, description) in _errors(method, path, operation, schemas).items():
                answer = responses.setdefault(code, {"description": description})
                answer.setdefault("content", {})["application/json"] = {
                    "schema": {"$ref": f"#/components/schemas/{component}"}
                }
            responses["429"]["headers"] = {
                "Retry-After": {
                    "schema": {"type": "integer"},
                    "description": "Seconds to wait before calling again.",
                }
            }
            for code, answer in responses.items():
                if code != "401":
                    answer.setdefault("headers", {}).update(rate_headers)
            added = []
            if _idempotent(method):
                added.append(
                    _header(
                        IDEMPOTENCY_HEADER,
                        "Any unique text (e.g. a UUID): a retry with the same key gets the first "
                        "answer again and creates nothing twice.",
                        MAX_KEY_LENGTH,
                    )
                )
            if "412" in responses:
                added.append(
                    _header(
                        "If-Match",
                        "The `version` (ETag) you read: the write is refused (412) if the "
                        "record changed since.",
                    )
                )
            operation["parameters"] = [*operation.get("parameters", []), *added]
    return result
