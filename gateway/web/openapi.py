"""The OpenAPI 3.1 document of the JSON API, served at ``GET /api/v1/openapi.json`` (no token).

spectree writes it from the routes that its ``spec.validate`` decorates: their pydantic models
(``gateway.web.api.schemas``, which the same decorator validates requests with), their
``Response`` statuses and their docstrings (first paragraph: the summary).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree

from gateway.web.api import common
from gateway.web.api.schemas import Error, ValidationErrors

DESCRIPTION = (
    "For the scheduling system and staff tools. Every call needs `Authorization: Bearer "
    "<token>`. Where several practices are configured, a call names its practice (query "
    "parameter on GET/DELETE, body field on POST). A JSON body whose text holds a NUL character "
    "or an unpaired surrogate, or whose numbers are NaN or Infinity, is refused with 422 (a "
    "reason per field); one over 256 KiB with 413."
)

spec = SpecTree(
    "flask",
    mode="strict",  # only the routes decorated with spec.validate
    title="SMS consent gateway API",
    version="1",
    description=DESCRIPTION,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    validation_error_status=422,
    validation_error_model=ValidationErrors,
    security_schemes=[
        SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer"))
    ],
    security={"bearer": []},
    before=common.reject_invalid(common.named_practice_exists),
)

bp = Blueprint("openapi", __name__)


def answers(*, body: bool = False, **codes: Any) -> Response:
    """The statuses of an API call: ``codes`` (``HTTP_200=(Model, "description")``), 401 for a
    missing or wrong token, 422 with a reason per field, and with a JSON ``body`` 400 (not JSON)
    and 413 (over 256 KiB)."""
    codes.setdefault("HTTP_401", (Error, "Missing or invalid token"))
    codes.setdefault("HTTP_422", (ValidationErrors, "Invalid fields, with a reason for each"))
    if body:
        codes.setdefault("HTTP_400", (Error, "Not JSON"))
        codes.setdefault("HTTP_413", (Error, "The body is larger than 256 KiB"))
    return Response(**codes)


def document() -> dict[str, Any]:
    """The OpenAPI document of the current app's routes (needs an app context)."""
    generated: dict[str, Any] = spec.spec
    for operations in generated["paths"].values():
        for operation in operations.values():
            if not operation["parameters"] and "requestBody" not in operation:
                operation["responses"].pop("422", None)  # no input: nothing can be invalid
    return generated


@bp.get("/api/v1/openapi.json")
def openapi() -> Any:
    return jsonify(document())
