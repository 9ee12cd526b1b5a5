//! An order in a later state cannot be made by hand, only reached through transitions.
use delivery_core::*;

fn forge(details: std::sync::Arc<DeliveryDetails>, id: DeliveryId) -> DeliveryOrder<Delivered> {
    DeliveryOrder {
        id,
        details,
        version: 3,
        data: DeliveredData {
            partner_order_number: "PN-1".parse().unwrap(),
            delivered_at: chrono::Utc::now(),
        },
    }
}

fn main() {}
