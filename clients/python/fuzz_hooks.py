"""Schemathesis hooks for fuzz.py (loaded through its configuration's `hooks`).

The fuzzer draws values from a small space ("0", "00", ...) and so repeats them where a
real client never would, and the service must refuse the repeat with 422, as documented:
the same Idempotency-Key with a different body, the same partner order number for a
second delivery of the partner, and a payment for a known ordering that names another
customer (ADR 0013). It also draws times from any century, and a delivery's
`delivered_at` must lie between the order's creation and now. A schema cannot say any of
this, and positive_data_acceptance would report these correct refusals as valid
requests rejected. So a valid key, number, ordering id or delivery time (the positive
cases) is replaced by a fresh one, or by now; an invalid one (negative testing) is left
for the service to refuse.
"""

import datetime
import re
import unicodedata
import uuid

import schemathesis

IDEMPOTENCY_KEY = "Idempotency-Key"
# The PartnerOrderNumber schema: 1 to 64 of these.
PARTNER_ORDER_NUMBER = re.compile(r"[-A-Za-z0-9_./]{1,64}")


# RFC 3339's date-time, as the schema's `format: date-time` takes it.
DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def is_date_time(value) -> bool:
    if not isinstance(value, str) or not DATE_TIME.fullmatch(value):
        return False
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_identifier(value) -> bool:
    """Whether `value` is an id as the identifier schemas take it: 1 to 128 characters, no
    control character, no white space at either end."""
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 128
        and not any(unicodedata.category(c) == "Cc" for c in value)
        and not value[0].isspace()
        and not value[-1].isspace()
    )


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
    if isinstance(body, dict) and body.get("transition") == "deliver":
        if is_date_time(body.get("delivered_at")):
            body["delivered_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    if isinstance(body, dict) and body.get("type") == "payment.succeeded":
        if is_identifier(body.get("ordering_id")):
            body["ordering_id"] = f"ord-fuzz-{uuid.uuid4().hex}"
