"""Staff review of inbound messages that may be revocations: ``/api/v1/reviews``."""

from __future__ import annotations

from typing import Any

#: OpenAPI path items for these routes, merged into gateway.openapi.DOCUMENT
OPENAPI_PATHS: dict[str, Any] = {}
