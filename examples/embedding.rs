//! Embedding delivery-core in another service: a warehouse's dispatch desk that keeps its
//! own copy of delivery orders as rows, loads one back into a typed order, and moves it.
//!
//! `cargo run -p delivery-examples --example embedding`

use chrono::{TimeZone, Utc};
use delivery_core::*;

fn meta(role: Role, who: &str) -> EventMeta {
    EventMeta {
        actor: Actor {
            role,
            id: who.parse().expect("a valid actor id"),
        },
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 24, 9, 30, 0).unwrap(),
    }
}

/// What the payment event said, parsed: an invalid field is refused here, once.
fn details() -> Result<DeliveryDetails, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "ordering_id": "ord-2026-0042",
        "customer_id": "cust-7",
        "payment_id": "pay-991",
        "shipping_address": {
            "name": "Ada Lovelace", "line1": "12 St James's Square",
            "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"
        },
        "lines": [{"product_id": "isbn-9780141439518", "title": "Pride and Prejudice",
                   "format": "PHYSICAL", "quantity": 1}]
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The typed API: each step is a method only where graph.yaml has the edge.
    let id = DeliveryId(uuid::Uuid::new_v4());
    let (order, created) = DeliveryOrder::create(id, details()?, meta(Role::System, "payments"));
    let (order, picked_up) = order.pick_up(
        PickUp {
            partner_order_number: "DX-1042".parse()?,
        },
        meta(Role::Partner, "simulated"),
    );
    println!(
        "{} -> {}: partner number {}",
        created.to,
        picked_up.to,
        order.partner_order_number()
    );
    // order.confirm_receipt(...) would not compile here: the parcel is not delivered yet.

    // 2. Store it as this service stores everything: a row (here, JSON).
    let row = serde_json::to_string(&AnyDeliveryOrder::from(order).snapshot())?;
    println!("stored row: {row}");

    // 3. Later, another request: load the row, validated on the way in.
    let snapshot: DeliverySnapshot = serde_json::from_str(&row)?;
    let stored = AnyDeliveryOrder::from_snapshot(snapshot)?;

    // 3a. Where the state matters to this code, match and get the typed order back.
    if let AnyDeliveryOrder::PickedUp(order) = &stored {
        let (delivered, event) = order.clone().deliver(
            Deliver {
                delivered_at: Utc::now(),
            },
            meta(Role::Partner, "simulated"),
        );
        println!(
            "typed: {} -> {} (seq {}), partner number still {}",
            event.from.map_or("-", DeliveryState::name),
            event.to,
            event.seq,
            delivered.partner_order_number()
        );
    }

    // 3b. Where the command arrives as data, `apply` checks role and graph at run time.
    // A refused command hands the order back unchanged, with the reason.
    let rejected = stored
        .apply(
            Command::ConfirmReceipt(ConfirmReceipt {}),
            meta(Role::Customer, "cust-7"),
        )
        .unwrap_err();
    println!("customer confirms too early: {rejected}");
    let rejected = rejected
        .order
        .apply(
            Command::Deliver(Deliver {
                delivered_at: Utc::now(),
            }),
            meta(Role::Customer, "cust-7"),
        )
        .unwrap_err();
    println!("customer reports delivery: {rejected}");
    let (delivered, event) = rejected.order.apply(
        Command::Deliver(Deliver {
            delivered_at: Utc::now(),
        }),
        meta(Role::Partner, "simulated"),
    )?;
    println!(
        "applied: now {} at version {}; event {}",
        delivered.state(),
        delivered.version(),
        serde_json::to_string(&event)?
    );
    Ok(())
}
