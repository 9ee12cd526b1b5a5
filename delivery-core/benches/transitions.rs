//! What the typestate costs: the happy path (pick_up → deliver → confirm_receipt) taken
//! through the typed methods, through `AnyDeliveryOrder::apply`, and through a plain
//! hand-written enum match doing the same work (move the data, record the event).
//!
//! `cargo bench -p delivery-core --bench transitions`; numbers go to docs/benchmarks.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use delivery_core::*;

fn pick_up() -> PickUp {
    PickUp {
        partner_order_number: "PN-0001".parse().unwrap(),
    }
}

fn deliver() -> Deliver {
    Deliver {
        delivered_at: support::at(),
    }
}

/// Everything a run consumes, made outside the measured loop (the actor ids allocate).
struct Inputs {
    pick_up: PickUp,
    deliver: Deliver,
    metas: [EventMeta; 3],
}

fn inputs() -> Inputs {
    Inputs {
        pick_up: pick_up(),
        deliver: deliver(),
        metas: [
            support::meta(Role::Partner),
            support::meta(Role::Partner),
            support::meta(Role::Customer),
        ],
    }
}

fn typed(
    order: DeliveryOrder<Created>,
    inputs: Inputs,
) -> (DeliveryOrder<DeliveryConfirmed>, [DeliveryEvent; 3]) {
    let [m1, m2, m3] = inputs.metas;
    let (order, e1) = order.pick_up(inputs.pick_up, m1);
    let (order, e2) = order.deliver(inputs.deliver, m2);
    let (order, e3) = order.confirm_receipt(ConfirmReceipt {}, m3);
    // Returned, so that criterion drops them outside the measurement.
    (order, [e1, e2, e3])
}

fn applied(order: AnyDeliveryOrder, inputs: Inputs) -> (AnyDeliveryOrder, [DeliveryEvent; 3]) {
    let [m1, m2, m3] = inputs.metas;
    let (order, e1) = order.apply(Command::PickUp(inputs.pick_up), m1).unwrap();
    let (order, e2) = order.apply(Command::Deliver(inputs.deliver), m2).unwrap();
    let (order, e3) = order
        .apply(Command::ConfirmReceipt(ConfirmReceipt {}), m3)
        .unwrap();
    // Returned, so that criterion drops them outside the measurement.
    (order, [e1, e2, e3])
}

/// The baseline: the same order as one struct with an enum for the state, moved by a match.
#[allow(dead_code)] // It carries what the typed order carries, so both move the same data.
mod plain {
    use super::*;

    pub enum PlainState {
        Created,
        PickedUp(PartnerOrderNumber),
        Delivered(PartnerOrderNumber, chrono::DateTime<chrono::Utc>),
        Confirmed(PartnerOrderNumber, chrono::DateTime<chrono::Utc>),
    }

    pub struct PlainOrder {
        pub id: DeliveryId,
        pub details: Arc<DeliveryDetails>,
        pub version: u64,
        pub state: PlainState,
    }

    pub fn step(
        order: PlainOrder,
        command: Command,
        meta: EventMeta,
    ) -> Option<(PlainOrder, DeliveryEvent)> {
        let (from, state) = match (order.state, &command) {
            (PlainState::Created, Command::PickUp(p)) => (
                DeliveryState::Created,
                PlainState::PickedUp(p.partner_order_number.clone()),
            ),
            (PlainState::PickedUp(n), Command::Deliver(d)) => (
                DeliveryState::PickedUp,
                PlainState::Delivered(n, d.delivered_at),
            ),
            (PlainState::Delivered(n, at), Command::ConfirmReceipt(_)) => {
                (DeliveryState::Delivered, PlainState::Confirmed(n, at))
            }
            _ => return None,
        };
        let to = match state {
            PlainState::Created => DeliveryState::Created,
            PlainState::PickedUp(_) => DeliveryState::PickedUp,
            PlainState::Delivered(..) => DeliveryState::Delivered,
            PlainState::Confirmed(..) => DeliveryState::DeliveryConfirmed,
        };
        let event = DeliveryEvent {
            delivery_id: order.id,
            seq: order.version + 1,
            from: Some(from),
            to,
            change: Change::Transition(command),
            actor: meta.actor,
            occurred_at: meta.occurred_at,
            graph_version: GRAPH_VERSION,
        };
        let order = PlainOrder {
            version: order.version + 1,
            state,
            ..order
        };
        Some((order, event))
    }

    pub fn chain(order: PlainOrder, inputs: Inputs) -> (PlainOrder, [DeliveryEvent; 3]) {
        let [m1, m2, m3] = inputs.metas;
        let (order, e1) = step(order, Command::PickUp(inputs.pick_up), m1).unwrap();
        let (order, e2) = step(order, Command::Deliver(inputs.deliver), m2).unwrap();
        let (order, e3) = step(order, Command::ConfirmReceipt(ConfirmReceipt {}), m3).unwrap();
        (order, [e1, e2, e3])
    }
}

fn created() -> DeliveryOrder<Created> {
    DeliveryOrder::create(
        support::id(),
        support::details(),
        support::meta(Role::System),
    )
    .0
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("happy path, 3 transitions");
    group.bench_function("typed methods", |b| {
        b.iter_batched(
            || (created(), inputs()),
            |(order, inputs)| typed(order, inputs),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("AnyDeliveryOrder::apply", |b| {
        b.iter_batched(
            || (AnyDeliveryOrder::from(created()), inputs()),
            |(order, inputs)| applied(order, inputs),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("plain enum match", |b| {
        b.iter_batched(
            || {
                let order = created();
                let order = plain::PlainOrder {
                    id: order.id(),
                    details: Arc::new(order.details().clone()),
                    version: order.version(),
                    state: plain::PlainState::Created,
                };
                (order, inputs())
            },
            |(order, inputs)| plain::chain(order, inputs),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
