"""The story's calls through the client openapi-generator's `python` generator made
(`delivery_client_openapi_generator`, installed unedited by .ci/api-clients)."""

from __future__ import annotations

import json
from typing import Any, Callable

from delivery_client_openapi_generator import ApiClient, Configuration
from delivery_client_openapi_generator.api import DeliveriesApi, PaymentsApi
from delivery_client_openapi_generator.exceptions import ApiException
from delivery_client_openapi_generator.models import PaymentEvent, TransitionRequest

from story_client import Answer


def answer(call: Callable[[], Any]) -> Answer:
    """The answer of a `*_with_http_info` call; a documented error status is raised with
    its body read into the model the spec names."""
    try:
        response = call()
        status, data, headers = response.status_code, response.data, response.headers
    except ApiException as err:
        status, data, headers = err.status, err.data, err.headers
    body = None if data is None else json.loads(data.to_json())
    return Answer(int(status), body, headers or {})


class OpenapiGeneratorClient:
    def __init__(self, base_url: str, tokens: dict[str, str]) -> None:
        def api_client(token: str) -> ApiClient:
            return ApiClient(Configuration(host=base_url, access_token=token))

        self.payments = PaymentsApi(api_client(tokens["service"]))
        self.deliveries = {role: DeliveriesApi(api_client(token)) for role, token in tokens.items()}

    def ingest_payment_event(self, event: dict[str, Any]) -> Answer:
        body = PaymentEvent.from_dict(event)
        return answer(lambda: self.payments.ingest_payment_event_with_http_info(body))

    def get_delivery(self, role: str, delivery_id: str) -> Answer:
        return answer(lambda: self.deliveries[role].get_delivery_with_http_info(delivery_id))

    def apply_transition(
        self, role: str, delivery_id: str, body: dict[str, Any], idempotency_key: str | None
    ) -> Answer:
        # The oneOf model picks the variant whose schema the body fits.
        request = TransitionRequest.from_dict(body)
        api = self.deliveries[role]
        return answer(
            lambda: api.apply_transition_with_http_info(delivery_id, request, idempotency_key=idempotency_key)
        )

    def get_delivery_history(self, role: str, delivery_id: str) -> Answer:
        return answer(lambda: self.deliveries[role].get_delivery_history_with_http_info(delivery_id))

    def list_ordering_deliveries(self, role: str, ordering_id: str) -> Answer:
        return answer(lambda: self.deliveries[role].list_ordering_deliveries_with_http_info(ordering_id))


def connect(base_url: str, tokens: dict[str, str]) -> OpenapiGeneratorClient:
    return OpenapiGeneratorClient(base_url, tokens)
