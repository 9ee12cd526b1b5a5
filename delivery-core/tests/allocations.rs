//! A transition allocates nothing: the order's details are shared, the state data moves,
//! and the event takes the payload and actor it was given. Counted with a counting global
//! allocator, not timed.
#![allow(unsafe_code)] // A global allocator cannot be written without it.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use delivery_core::*;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations `f` makes on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let value = f();
    (value, ALLOCATIONS.with(Cell::get) - before)
}

#[test]
fn typed_transitions_do_not_allocate() {
    let (order, _) = DeliveryOrder::create(
        support::id(),
        support::details(),
        support::meta(Role::System),
    );
    let pick_up = PickUp {
        partner_order_number: "PN-1".parse().unwrap(),
    };
    let deliver = Deliver {
        delivered_at: support::at(),
    };
    let [m1, m2, m3] = [Role::Partner, Role::Partner, Role::Customer].map(support::meta);
    let (events, count) = allocations(|| {
        let (order, e1) = order.pick_up(pick_up, m1);
        let (order, e2) = order.deliver(deliver, m2);
        let (_, e3) = order.confirm_receipt(ConfirmReceipt {}, m3);
        [e1, e2, e3]
    });
    assert_eq!(count, 0, "allocations in three typed transitions");
    assert_eq!(events.map(|e| e.seq), [2, 3, 4]);
}

#[test]
fn apply_does_not_allocate() {
    let (order, _) = DeliveryOrder::create(
        support::id(),
        support::details(),
        support::meta(Role::System),
    );
    let order = AnyDeliveryOrder::from(order);
    let command = Command::PickUp(PickUp {
        partner_order_number: "PN-1".parse().unwrap(),
    });
    let meta = support::meta(Role::Partner);
    let (result, count) = allocations(|| order.apply(command, meta));
    assert_eq!(count, 0, "allocations in apply");
    assert_eq!(result.unwrap().0.state(), DeliveryState::PickedUp);
}
