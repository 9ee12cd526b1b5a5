"""What the story asks of a generated client, and the tokens it calls with.

Each adapter (`adapter_openapi_python_client.py`, `adapter_openapi_generator.py`) wraps one
generator's unedited output in `Client`'s few calls and answers with `Answer`s. A module of
its own, so that `story.py`, run as a script, and the adapters share one `Answer`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol


class Answer(NamedTuple):
    """A response as the generated client read it: the body is its model, as JSON."""

    status: int
    body: Any
    headers: Mapping[str, str]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class Client(Protocol):
    """The operations the story calls, one generated operation each; `role` picks the
    token."""

    def ingest_payment_event(self, event: dict[str, Any]) -> Answer: ...

    def get_delivery(self, role: str, delivery_id: str) -> Answer: ...

    def apply_transition(
        self, role: str, delivery_id: str, body: dict[str, Any], idempotency_key: str | None
    ) -> Answer: ...

    def get_delivery_history(self, role: str, delivery_id: str) -> Answer: ...

    def list_ordering_deliveries(self, role: str, ordering_id: str) -> Answer: ...


# The roles the story acts as.
STORY_ROLES = ("service", "partner", "customer", "operator")


def token(role: str) -> str:
    """The bearer token of `role`, from `<ROLE>_TOKEN`."""
    variable = f"{role.upper()}_TOKEN"
    value = os.environ.get(variable)
    if not value:
        raise SystemExit(f"{variable} is not set")
    return value
