//! A transition consumes the order: the old state cannot be used again.
use delivery_core::*;

fn twice(order: DeliveryOrder<PickedUp>, deliver: Deliver, fail: Fail, meta: EventMeta) {
    let (_delivered, _) = order.deliver(deliver, meta.clone());
    let _ = order.fail(fail, meta);
}

fn main() {}
