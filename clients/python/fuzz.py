#!/usr/bin/env python3
"""Fuzzes the running service with schemathesis from its own /openapi.json, once per role.

Every check schemathesis has runs (`--checks all`): no 5xx, every status, content type,
header and body as the spec documents it, schema-invalid input refused, schema-valid input
accepted, auth enforced, 405 with `Allow`. Nothing is excluded; where the service rightly
refuses a schema-valid request for a reason the schema cannot state, the configuration
below says which status and why (and fuzz_hooks.py keeps Idempotency-Keys unique).

Before the runs, the generated client leaves a delivery of the customer in each state
someone can act on; the operations that take an id get real ones most of the time
(schemathesis dictionaries filled from the service), so the fuzzer reaches the transitions
and reads instead of stopping at 404. Each role's run calls every operation with that role's token
(the others are refused, which the checks also hold to the spec). Tokens come from the
environment: SERVICE_TOKEN, OPERATOR_TOKEN, ADMIN_TOKEN, PARTNER_TOKEN, CUSTOMER_TOKEN.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from delivery_service_client import AuthenticatedClient
from delivery_service_client.api.deliveries import list_deliveries
from delivery_service_client.models import DeliveryPage

import adapter_openapi_python_client
from story import Story
from story_client import STORY_ROLES, token

HERE = Path(__file__).resolve().parent

# One run per role; the service's run comes first, as its payment events make deliveries.
ROLES = ["service", "operator", "admin", "partner", "customer"]


def seed_deliveries(seeder: Story) -> None:
    """A delivery in each state someone can act on (two DELIVERED: the customer confirms
    or disputes), each of its own ordering, made through the generated client."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    seeds = [
        [],
        [("pick_up", "CREATED", "PICKED_UP")],
        [("pick_up", "CREATED", "PICKED_UP"), ("deliver", "PICKED_UP", "DELIVERED")],
        [("pick_up", "CREATED", "PICKED_UP"), ("deliver", "PICKED_UP", "DELIVERED")],
        [("fail", "CREATED", "DELIVERY_FAILED")],
        [("fail", "CREATED", "DELIVERY_FAILED"), ("escalate", "DELIVERY_FAILED", "PENDING_BY_OPERATOR")],
    ]
    print("seeding deliveries for the fuzzer", flush=True)
    for number, path in enumerate(seeds):
        delivery_id = seeder.pay(f"ord-fuzz-{seeder.run}-{number}")
        for transition, source, target in path:
            role, payload = {
                "pick_up": ("partner", {"partner_order_number": f"DX-{seeder.run}-fuzz-{number}"}),
                "deliver": ("partner", {"delivered_at": now}),
                "fail": ("partner", {"reason": "PACKAGE_LOST", "detail": "Seeded for the fuzzer."}),
                "escalate": ("operator", {"assignee": "op-fuzz"}),
            }[transition]
            seeder.move(role, delivery_id, {"transition": transition, **payload}, source, target)


def write_dictionary(path: Path, values: list[str]) -> None:
    """A schemathesis (libFuzzer-format) dictionary: one JSON-quoted string per line."""
    if not values:
        raise SystemExit(f"nothing to put in {path.name}")
    path.write_text("".join(json.dumps(value) + "\n" for value in values))


def seed_dictionaries(client: AuthenticatedClient, work: Path) -> None:
    """Real delivery ids, ordering ids and cursors, read from the service by `client`."""
    page = list_deliveries.sync(client=client, limit=100)
    if not isinstance(page, DeliveryPage):
        raise SystemExit(f"cannot list the deliveries: {page!r}")
    first = list_deliveries.sync(client=client, limit=1)
    cursor = getattr(first, "next_cursor", None)
    write_dictionary(work / "deliveries.dict", [str(item.id) for item in page.items])
    write_dictionary(work / "orderings.dict", sorted({item.ordering_id for item in page.items}))
    write_dictionary(work / "cursors.dict", [cursor] if isinstance(cursor, str) else [])


def toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value)


def config(role: str, work: Path) -> str:
    """The schemathesis.toml of one role's run."""
    lines = [
        f"hooks = {toml_string(str(HERE / 'fuzz_hooks.py'))}",
        "",
        # Through the spec's security scheme (not a plain header), so that the checks that
        # leave the token out know it is the credential.
        "[auth.openapi.bearerAuth]",
        f"bearer = {toml_string(token(role))}",
        "",
        "[dictionaries]",
        *(
            f"{name} = {{ from-file = {toml_string(str(work / f'{name}.dict'))} }}"
            for name in ["deliveries", "orderings", "cursors"]
        ),
        "",
        "[parameters]",
        # A page cursor is opaque: only the ones the service issued are valid.
        '"query.cursor" = { dictionary = "cursors", probability = 0.8 }',
        "",
        "[[operations]]",
        'include-path-regex = "^/v1/deliveries/"',
        'parameters = { "path.id" = { dictionary = "deliveries", probability = 0.8 } }',
        "",
        "[[operations]]",
        'include-operation-id = "listOrderingDeliveries"',
        'parameters = { "path.id" = { dictionary = "orderings", probability = 0.8 } }',
        "",
        # The fuzzer also sends cursors of its own making, which the service refuses with
        # 422 (invalid-input): it cannot tell a forged cursor from garbage, and the schema
        # cannot say which strings the service issued. The list operations take no body,
        # so 422 there means exactly that; anything else still fails the check.
        "[[operations]]",
        'include-operation-id = ["listDeliveries", "listOperatorQueue"]',
        "checks.positive_data_acceptance.expected-statuses = "
        '["2xx", "3xx", "401", "403", "404", "409", "422", "429"]',
    ]
    return "\n".join(lines) + "\n"


def run(role: str, base_url: str, work: Path, args: argparse.Namespace) -> bool:
    path = work / f"schemathesis-{role}.toml"
    path.write_text(config(role, work))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(path),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(args.max_examples),
        "--seed",
        str(args.seed),
        "--workers",
        str(args.workers),
        "--report",
        "junit",
        "--report-junit-path",
        str(work / f"schemathesis-{role}.xml"),
    ]
    print(f"=== schemathesis as {role}", flush=True)
    started = time.monotonic()
    outcome = subprocess.run(command, check=False)
    print(f"=== {role}: exit {outcome.returncode} in {time.monotonic() - started:.0f} s", flush=True)
    return outcome.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--work-dir", required=True, type=Path, help="for configs, dictionaries, reports")
    parser.add_argument("--customer-id", required=True, help="the customer token's customer_id")
    parser.add_argument("--partner-id", default="simulated", help="the partner token's partner_id (DEFAULT_PARTNER)")
    parser.add_argument("--max-examples", type=int, default=30, help="test cases per operation and phase")
    parser.add_argument("--seed", type=int, default=20261124, help="the same seed, the same requests")
    # One worker: with two, Python 3.11's AST parser (which hypothesis calls to describe
    # strategies) fails now and then across threads ("AST constructor recursion depth
    # mismatch"), a fault of the tool, not of the service.
    parser.add_argument("--workers", default="1")
    parser.add_argument("--roles", default=",".join(ROLES), help=f"a subset of {','.join(ROLES)}")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    client = adapter_openapi_python_client.connect(args.base_url, {role: token(role) for role in STORY_ROLES})
    seed_deliveries(Story(client, args.customer_id, args.partner_id))
    seed_dictionaries(client.clients["operator"], args.work_dir)
    failed = [role for role in args.roles.split(",") if not run(role, args.base_url, args.work_dir, args)]
    if failed:
        print(f"schemathesis found problems as: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("schemathesis: no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
