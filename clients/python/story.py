#!/usr/bin/env python3
"""Drives the delivery story through a client generated from the served /openapi.json.

The client is chosen by `--client`: each name is a module of this directory that wraps one
generator's unedited output in the few calls the story makes (story_client.py):
`adapter_openapi_python_client` and `adapter_openapi_generator` (its `python` generator).
Bodies cross that boundary as JSON values made by the generated models themselves, so a
model that does not read or write what the service sends shows up here. The story checks
every answer and exits non-zero on the first mismatch:

1. payment event -> CREATED -> pick_up -> deliver -> confirm_receipt (DELIVERY_CONFIRMED)
2. payment event -> pick_up -> fail -> escalate -> resolve(REDELIVER), after which the
   ordering lists two delivery orders: the resolved one and its CREATED replacement.

Tokens come from the environment (SERVICE_TOKEN, PARTNER_TOKEN, CUSTOMER_TOKEN,
OPERATOR_TOKEN); the customer token must carry CUSTOMER_ID and the partner token the
partner new deliveries are assigned to (PARTNER_ID).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import sys
import uuid
from typing import Any

from story_client import STORY_ROLES, Answer, Client, token


class Mismatch(Exception):
    """An answer of the service that is not what the story expects."""


def expect(what: str, actual: Any, expected: Any) -> None:
    if actual != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")


def body_of(answer: Answer, status: int) -> dict[str, Any]:
    """The answer's body, after checking the status."""
    if answer.status != status:
        raise Mismatch(f"expected {status}, got {answer.status}: {answer.body!r}")
    if not isinstance(answer.body, dict):
        raise Mismatch(f"expected a body, got {answer.body!r}")
    return answer.body


class Story:
    def __init__(self, client: Client, customer_id: str, partner_id: str) -> None:
        self.client = client
        self.customer_id = customer_id
        self.partner_id = partner_id
        # A fresh ordering id per run, so reruns against one database do not collide.
        self.run = uuid.uuid4().hex[:12]

    def step(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def pay(self, ordering_id: str) -> str:
        """Reports a payment with one physical and one e-book; returns the new delivery's
        id."""
        event = {
            "event_id": str(uuid.uuid4()),
            "type": "payment.succeeded",
            "occurred_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "payment_id": f"pay-{ordering_id}",
            "ordering_id": ordering_id,
            "customer_id": self.customer_id,
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "12 St James's Square",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "GB",
            },
            "lines": [
                {
                    "product_id": "isbn-9780141439518",
                    "title": "Pride and Prejudice",
                    "format": "PHYSICAL",
                    "quantity": 1,
                },
                {
                    "product_id": "isbn-9780241341988",
                    "title": "Persuasion (e-book)",
                    "format": "EBOOK",
                    "quantity": 1,
                },
            ],
        }
        answer = self.client.ingest_payment_event(event)
        result = body_of(answer, 201)
        expect("payment outcome", result.get("outcome"), "created")
        delivery_id = result.get("delivery_id")
        if not isinstance(delivery_id, str):
            raise Mismatch(f"no delivery_id in {result!r}")
        expect("Location", answer.header("location"), f"/v1/deliveries/{delivery_id}")
        self.step(f"payment for {ordering_id}: delivery {delivery_id} created")

        # The payment service redelivers events: the same event_id changes nothing.
        again = body_of(self.client.ingest_payment_event(event), 200)
        expect("replayed payment outcome", again.get("outcome"), "already_handled")
        expect("replayed payment delivery", again.get("delivery_id"), delivery_id)
        return delivery_id

    def delivery(self, role: str, delivery_id: str) -> dict[str, Any]:
        return body_of(self.client.get_delivery(role, delivery_id), 200)

    def move(
        self, role: str, delivery_id: str, body: dict[str, Any], source: str, target: str
    ) -> dict[str, Any]:
        """Makes a transition and checks what it reports, and that a read sees it at once."""
        name = body["transition"]
        before = self.delivery(role, delivery_id)
        expect(f"state of {delivery_id} before {name}", before["state"], source)
        answer = self.client.apply_transition(role, delivery_id, body, str(uuid.uuid4()))
        result = body_of(answer, 200)
        expect("transition's delivery", result["delivery_id"], delivery_id)
        expect(f"{name} from", result["from"], source)
        expect(f"{name} to", result["to"], target)
        expect(f"version after {name}", result["version"], before["version"] + 1)
        after = self.delivery(role, delivery_id)
        expect(f"state read after {name}", after["state"], target)
        expect(f"version read after {name}", after["version"], result["version"])
        self.step(f"{name}: {source} -> {target} (version {result['version']})")
        return result

    def happy_path(self) -> None:
        print("happy path: payment -> pick_up -> deliver -> confirm_receipt")
        ordering_id = f"ord-py-{self.run}-1"
        delivery_id = self.pay(ordering_id)

        created = self.delivery("partner", delivery_id)
        expect("new delivery's state", created["state"], "CREATED")
        expect("new delivery's ordering", created["ordering_id"], ordering_id)
        expect("new delivery's customer", created["customer_id"], self.customer_id)
        expect("new delivery's partner", created.get("partner_id"), self.partner_id)
        expect(
            "new delivery's allowed transitions",
            sorted(created["allowed_transitions"]),
            ["fail", "pick_up"],
        )
        expect("delivered lines", [line["format"] for line in created["lines"]], ["PHYSICAL"])

        partner_order_number = f"DX-{self.run}"
        pick_up = {"transition": "pick_up", "partner_order_number": partner_order_number}
        self.move("partner", delivery_id, pick_up, "CREATED", "PICKED_UP")
        delivered_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        deliver = {"transition": "deliver", "delivered_at": delivered_at.isoformat()}
        self.move("partner", delivery_id, deliver, "PICKED_UP", "DELIVERED")
        confirm = {"transition": "confirm_receipt"}
        self.move("customer", delivery_id, confirm, "DELIVERED", "DELIVERY_CONFIRMED")

        confirmed = self.delivery("customer", delivery_id)
        expect(
            "confirmed delivery's partner order number",
            confirmed.get("partner_order_number"),
            partner_order_number,
        )
        expect(
            "confirmed delivery's delivered_at",
            datetime.datetime.fromisoformat(confirmed["delivered_at"]),
            delivered_at,
        )
        expect("a final state's allowed transitions", confirmed["allowed_transitions"], [])

        history = body_of(self.client.get_delivery_history("customer", delivery_id), 200)
        expect(
            "history",
            [(item["transition"], item["to"]) for item in history["items"]],
            [
                ("create", "CREATED"),
                ("pick_up", "PICKED_UP"),
                ("deliver", "DELIVERED"),
                ("confirm_receipt", "DELIVERY_CONFIRMED"),
            ],
        )
        expect("history's sequence numbers", [item["seq"] for item in history["items"]], [1, 2, 3, 4])
        self.step("history: create, pick_up, deliver, confirm_receipt")

    def redelivery(self) -> None:
        print("redelivery: payment -> pick_up -> fail -> escalate -> resolve(REDELIVER)")
        ordering_id = f"ord-py-{self.run}-2"
        delivery_id = self.pay(ordering_id)
        pick_up = {"transition": "pick_up", "partner_order_number": f"DX-{self.run}-2"}
        self.move("partner", delivery_id, pick_up, "CREATED", "PICKED_UP")
        fail = {
            "transition": "fail",
            "reason": "RECIPIENT_UNAVAILABLE",
            "detail": "Nobody answered; card left.",
        }
        self.move("partner", delivery_id, fail, "PICKED_UP", "DELIVERY_FAILED")
        failed = self.delivery("operator", delivery_id)
        expect("failure reason", failed.get("failure_reason"), "RECIPIENT_UNAVAILABLE")

        escalate = {"transition": "escalate", "assignee": "op-ada"}
        self.move("operator", delivery_id, escalate, "DELIVERY_FAILED", "PENDING_BY_OPERATOR")
        resolve = {
            "transition": "resolve",
            "resolution": "REDELIVER",
            "note": "Address confirmed by phone.",
        }
        resolved = self.move("operator", delivery_id, resolve, "PENDING_BY_OPERATOR", "RESOLVED")
        replacement_id = resolved.get("replacement_delivery_id")
        if not isinstance(replacement_id, str) or replacement_id == delivery_id:
            raise Mismatch(f"REDELIVER did not name a new delivery: {resolved!r}")
        self.step(f"replacement delivery {replacement_id}")

        # The resolved delivery is final: the service refuses with the problem's details.
        late = {"transition": "pick_up", "partner_order_number": f"DX-{self.run}-late"}
        problem = body_of(self.client.apply_transition("partner", delivery_id, late, None), 409)
        expect("refusal's type", problem.get("type"), "urn:delivery-svc:problem:illegal-transition")
        expect("refusal's current state", problem.get("current_state"), "RESOLVED")
        expect("refusal's attempted transition", problem.get("attempted_transition"), "pick_up")
        expect("refusal's allowed transitions", problem.get("allowed_transitions"), [])
        self.step("pick_up on the resolved delivery: 409 illegal-transition")

        for role in ("operator", "customer"):
            listing = body_of(self.client.list_ordering_deliveries(role, ordering_id), 200)
            expect(f"ordering of the listing ({role})", listing["ordering_id"], ordering_id)
            items = listing["items"]
            expect(
                f"the ordering's deliveries ({role})",
                [(item["id"], item["state"]) for item in items],
                [(delivery_id, "RESOLVED"), (replacement_id, "CREATED")],
            )
            first, second = items
            expect("resolution", first.get("resolution"), "REDELIVER")
            expect("replaced by", first.get("replaced_by_delivery_id"), replacement_id)
            expect("replaces", second.get("replaces_delivery_id"), delivery_id)
            expect("the replacement's partner order number", second.get("partner_order_number"), None)
            expect("the replacement's ordering", second["ordering_id"], ordering_id)
        self.step(f"ordering {ordering_id}: two delivery orders, RESOLVED and its CREATED replacement")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--client",
        required=True,
        choices=["adapter_openapi_python_client", "adapter_openapi_generator"],
        help="the module wrapping the generated client",
    )
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--customer-id", required=True, help="the customer token's customer_id")
    parser.add_argument("--partner-id", default="simulated", help="the partner token's partner_id (DEFAULT_PARTNER)")
    args = parser.parse_args()

    tokens = {role: token(role) for role in STORY_ROLES}
    client = importlib.import_module(args.client).connect(args.base_url, tokens)
    story = Story(client, args.customer_id, args.partner_id)
    try:
        story.happy_path()
        story.redelivery()
    except Mismatch as mismatch:
        print(f"FAILED: {mismatch}", file=sys.stderr)
        return 1
    print(f"the client of {args.client} drove the whole story")
    return 0


if __name__ == "__main__":
    sys.exit(main())
