//! Sample data shared by delivery-core's tests and compile-pass cases.
#![allow(dead_code)] // Each including file uses a different part.

use chrono::{DateTime, TimeZone, Utc};
use delivery_core::*;

/// A fixed instant, so that events are reproducible.
pub fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

pub fn id() -> DeliveryId {
    DeliveryId(uuid::Uuid::from_u128(
        0x0000_0000_0000_4000_8000_0000_0000_0001,
    ))
}

pub fn meta(role: Role) -> EventMeta {
    EventMeta {
        actor: Actor {
            role,
            id: format!("{role}-1").parse().unwrap(),
        },
        occurred_at: at(),
    }
}

fn line(raw: &str) -> Line {
    raw.parse().unwrap()
}

pub fn details() -> DeliveryDetails {
    DeliveryDetails {
        ordering_id: "ord-1".parse().unwrap(),
        customer_id: "cust-1".parse().unwrap(),
        payment_id: "pay-1".parse().unwrap(),
        shipping_address: ShippingAddress {
            name: line("Ada Lovelace"),
            line1: line("12 St James's Square"),
            line2: None,
            city: line("London"),
            postal_code: line("SW1Y 4JH"),
            country: "GB".parse().unwrap(),
        },
        lines: PhysicalLines::from_ordering([OrderLine {
            product_id: "isbn-9780141439518".parse().unwrap(),
            title: line("Pride and Prejudice"),
            format: Format::Physical,
            quantity: 1.try_into().unwrap(),
        }])
        .unwrap(),
        replaces: None,
    }
}
