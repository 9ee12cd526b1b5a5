//! A failed delivery always has a reason: neither the payload nor the state's data can be
//! made without one.
use delivery_core::*;

fn fail(order: DeliveryOrder<PickedUp>, meta: EventMeta) {
    let _ = order.fail(Fail { detail: None }, meta);
}

fn data() -> DeliveryFailedData {
    DeliveryFailedData {
        partner_order_number: None,
        detail: None,
    }
}

fn main() {}
