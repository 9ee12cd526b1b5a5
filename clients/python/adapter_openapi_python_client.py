"""The story's calls through the client openapi-python-client generated
(`delivery_service_client`, installed unedited by .ci/api-clients)."""

from __future__ import annotations

import uuid
from typing import Any

from delivery_service_client import AuthenticatedClient
from delivery_service_client.api.deliveries import (
    apply_transition,
    get_delivery,
    get_delivery_history,
    list_ordering_deliveries,
)
from delivery_service_client.api.payments import ingest_payment_event
from delivery_service_client.models import (
    PaymentEvent,
    TransitionRequestConfirmReceipt,
    TransitionRequestDeliver,
    TransitionRequestDispute,
    TransitionRequestEscalate,
    TransitionRequestFail,
    TransitionRequestPickUp,
    TransitionRequestResolve,
)
from delivery_service_client.types import UNSET, Response

from story_client import Answer

# The generator makes one class per variant of the tagged union; the body names its own.
VARIANTS = {
    "pick_up": TransitionRequestPickUp,
    "fail": TransitionRequestFail,
    "deliver": TransitionRequestDeliver,
    "confirm_receipt": TransitionRequestConfirmReceipt,
    "dispute": TransitionRequestDispute,
    "escalate": TransitionRequestEscalate,
    "resolve": TransitionRequestResolve,
}


def answer(response: Response[Any]) -> Answer:
    parsed = response.parsed
    body = None if parsed is None else parsed.to_dict()
    return Answer(int(response.status_code), body, response.headers)


class OpenapiPythonClient:
    def __init__(self, base_url: str, tokens: dict[str, str]) -> None:
        # An undocumented status is a broken spec: raise rather than return None.
        self.clients = {
            role: AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)
            for role, token in tokens.items()
        }

    def ingest_payment_event(self, event: dict[str, Any]) -> Answer:
        body = PaymentEvent.from_dict(event)
        return answer(ingest_payment_event.sync_detailed(client=self.clients["service"], body=body))

    def get_delivery(self, role: str, delivery_id: str) -> Answer:
        return answer(get_delivery.sync_detailed(uuid.UUID(delivery_id), client=self.clients[role]))

    def apply_transition(
        self, role: str, delivery_id: str, body: dict[str, Any], idempotency_key: str | None
    ) -> Answer:
        request = VARIANTS[body["transition"]].from_dict(body)
        response = apply_transition.sync_detailed(
            uuid.UUID(delivery_id),
            client=self.clients[role],
            body=request,
            idempotency_key=UNSET if idempotency_key is None else idempotency_key,
        )
        return answer(response)

    def get_delivery_history(self, role: str, delivery_id: str) -> Answer:
        return answer(get_delivery_history.sync_detailed(uuid.UUID(delivery_id), client=self.clients[role]))

    def list_ordering_deliveries(self, role: str, ordering_id: str) -> Answer:
        return answer(list_ordering_deliveries.sync_detailed(ordering_id, client=self.clients[role]))


def connect(base_url: str, tokens: dict[str, str]) -> OpenapiPythonClient:
    return OpenapiPythonClient(base_url, tokens)
