"""Schemathesis hooks for fuzz.py (loaded through its configuration's `hooks`).

The fuzzer draws values from a small space ("0", "00", ...) and so repeats them where a
real client never would, and the service must refuse the repeat with 422, as documented:
the same Idempotency-Key with a different body, and the same partner order number for a
second delivery of the partner. positive_data_acceptance would report these correct
refusals as valid requests rejected. So a valid key or number (the positive cases) is
replaced by a fresh one; an invalid one (negative testing) is left for the service to
refuse.
"""

import re
import uuid

import schemathesis

IDEMPOTENCY_KEY = "Idempotency-Key"
# The PartnerOrderNumber schema: 1 to 64 of these.
PARTNER_ORDER_NUMBER = re.compile(r"[-A-Za-z0-9_./]{1,64}")


@schemathesis.hook
def before_call(context, case, kwargs):
    key = (case.headers or {}).get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and 1 <= len(key) <= 255:
        case.headers[IDEMPOTENCY_KEY] = f"fuzz-{uuid.uuid4()}"
    body = case.body
    if isinstance(body, dict) and body.get("transition") == "pick_up":
        number = body.get("partner_order_number")
        if isinstance(number, str) and PARTNER_ORDER_NUMBER.fullmatch(number):
            body["partner_order_number"] = f"FZ-{uuid.uuid4().hex}"
