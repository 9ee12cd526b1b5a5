//! The delivery order state machine as types.
//!
//! A delivery order in state `S` is a [`DeliveryOrder<S>`]; the transitions graph.yaml allows
//! out of `S` are its only methods, and each consumes the order and returns the next one
//! with the [`DeliveryEvent`] it recorded. Calling a transition the graph does not have,
//! going backwards, or using an order after it moved on does not compile.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use delivery_core::*;
//! # fn details() -> DeliveryDetails {
//! #     let line = |raw: &str| raw.parse::<Line>().unwrap();
//! #     DeliveryDetails {
//! #         ordering_id: "ord-1".parse().unwrap(),
//! #         customer_id: "cust-1".parse().unwrap(),
//! #         payment_id: "pay-1".parse().unwrap(),
//! #         shipping_address: ShippingAddress {
//! #             name: line("Ada Lovelace"), line1: line("12 St James's Square"), line2: None,
//! #             city: line("London"), postal_code: line("SW1Y 4JH"), country: "GB".parse().unwrap(),
//! #         },
//! #         lines: PhysicalLines::from_ordering([OrderLine {
//! #             product_id: "isbn-9780141439518".parse().unwrap(),
//! #             title: line("Pride and Prejudice"),
//! #             format: Format::Physical,
//! #             quantity: 1.try_into().unwrap(),
//! #         }]).unwrap(),
//! #         replaces: None,
//! #     }
//! # }
//! let meta = |role, id: &str| EventMeta {
//!     actor: Actor { role, id: id.parse().unwrap() },
//!     occurred_at: Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap(),
//! };
//! let id = DeliveryId(uuid::Uuid::nil());
//! let (order, _) = DeliveryOrder::create(id, details(), meta(Role::System, "payments"));
//! let (order, _) = order.pick_up(
//!     PickUp { partner_order_number: "DX-1042".parse().unwrap() },
//!     meta(Role::Partner, "dhl"),
//! );
//! assert_eq!(order.partner_order_number().as_str(), "DX-1042");
//! ```
//!
//! Where the state is known only at run time (a row from a database), [`AnyDeliveryOrder`]
//! holds any state and [`AnyDeliveryOrder::apply`] takes a [`Command`], checking the actor's
//! role; it dispatches through the same typed methods.
//!
//! - [`typestate`]: the mechanism: [`State`], [`CanTransitionTo`], ranks against cycles.
//! - [`generated`]: everything graph.yaml defines (states, transitions, enums, commands).
//! - [`order`]: [`DeliveryOrder<S>`] and its fixed [`DeliveryDetails`].
//! - [`event`]: [`DeliveryEvent`], [`Actor`], [`EventMeta`].
//! - [`runtime`]: [`AnyDeliveryOrder::apply`], rehydration, [`TransitionError`].
//! - [`values`]: validated values such as [`PartnerOrderNumber`].

pub mod event;
pub mod generated;
pub mod order;
pub mod runtime;
pub mod typestate;
pub mod values;

pub use event::{Actor, Change, DeliveryEvent, EventMeta};
pub use generated::*;
pub use order::{DeliveryDetails, DeliveryOrder};
pub use runtime::{CorruptRecord, DeliverySnapshot, Rejected, TransitionError};
pub use typestate::{CanTransitionTo, State};
pub use values::*;
