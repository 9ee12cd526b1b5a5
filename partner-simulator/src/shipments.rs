//! `POST /v1/shipments`: a booking, idempotent by `Idempotency-Key` (the service sends its
//! delivery id), answered with the partner's booking id. The first request under a key
//! books and decides the delivery's fate; a repeat answers the same booking. The
//! [`Ledger`] keeps all of it for the tests to check.

use std::collections::BTreeMap;
use std::sync::Mutex;

use delivery_core::FailureReason;
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Request, Response, handler};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Simulator;

/// The reasons a partner gives for a delivery failing after its pick-up (not the system's
/// SLA_EXCEEDED, nor the customer's NOT_RECEIVED, nor PICKUP_FAILED, which comes before).
const PARTNER_FAILURES: &[FailureReason] = &[
    FailureReason::AddressInvalid,
    FailureReason::RecipientUnavailable,
    FailureReason::RecipientRefused,
    FailureReason::LocationInaccessible,
    FailureReason::PackageDamaged,
    FailureReason::PackageLost,
    FailureReason::CourierUnavailable,
    FailureReason::ReturnedToSender,
    FailureReason::CancelledByPartner,
];

/// How a booked delivery ends, decided when it is booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    Failed(FailureReason),
}

/// One booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// The service's delivery id, sent as the external id and the `Idempotency-Key`.
    pub external_id: String,
    pub booking_id: String,
    pub fate: Fate,
    /// Booking requests under this key, the first included (more: retries, all answered
    /// with the same booking).
    pub requests: u64,
    /// Reports the service accepted (2xx), duplicates sent on purpose included.
    pub reports_accepted: u64,
    /// Reports the simulator gave up on after its retries; a healthy run has none.
    pub reports_abandoned: u64,
}

/// Everything the simulator has been asked and has done.
#[derive(Debug)]
pub struct Ledger {
    failure_probability: f64,
    inner: Mutex<Book>,
}

#[derive(Debug)]
struct Book {
    by_key: BTreeMap<String, Shipment>,
    outage: bool,
    refused: u64,
    /// Decides each delivery's fate.
    fates: StdRng,
}

/// The body a booking carries; only the external id matters here.
#[derive(Debug, Deserialize)]
pub struct ShipmentRequest {
    pub external_id: String,
}

/// The answer to a booking.
#[derive(Debug, Serialize)]
struct Booked<'a> {
    booking_id: &'a str,
    external_id: &'a str,
}

impl Ledger {
    /// A ledger whose fates follow `seed` (the same seed, the same fates in booking
    /// order), or are random without one.
    pub(crate) fn new(failure_probability: f64, seed: Option<u64>) -> Ledger {
        let fates = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Ledger {
            failure_probability,
            inner: Mutex::new(Book {
                by_key: BTreeMap::new(),
                outage: false,
                refused: 0,
                fates,
            }),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic elsewhere while holding the lock leaves consistent data: plain inserts.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_outage(&self, down: bool) {
        self.book().outage = down;
    }

    /// Every booking, by external id.
    pub fn shipments(&self) -> Vec<Shipment> {
        self.book().by_key.values().cloned().collect()
    }

    pub fn shipment(&self, external_id: &str) -> Option<Shipment> {
        self.book().by_key.get(external_id).cloned()
    }

    /// Booking requests refused with 503 during outages.
    pub fn refused(&self) -> u64 {
        self.book().refused
    }

    pub(crate) fn report_done(&self, external_id: &str, accepted: bool) {
        if let Some(shipment) = self.book().by_key.get_mut(external_id) {
            if accepted {
                shipment.reports_accepted += 1;
            } else {
                shipment.reports_abandoned += 1;
            }
        }
    }

    /// Books `external_id` unless booked already; `None` during an outage. The bool says
    /// whether this request made the booking.
    fn take(&self, external_id: &str) -> Option<(Shipment, bool)> {
        let mut bookings = self.book();
        if bookings.outage {
            bookings.refused += 1;
            return None;
        }
        if let Some(shipment) = bookings.by_key.get_mut(external_id) {
            shipment.requests += 1;
            return Some((shipment.clone(), false));
        }
        let rng = &mut bookings.fates;
        let fate = if rng.random_bool(self.failure_probability) {
            Fate::Failed(
                *PARTNER_FAILURES
                    .choose(rng)
                    .unwrap_or(&FailureReason::Other),
            )
        } else {
            Fate::Delivered
        };
        let shipment = Shipment {
            external_id: external_id.to_owned(),
            booking_id: format!("bk_{}", uuid::Uuid::new_v4().simple()),
            fate,
            requests: 1,
            reports_accepted: 0,
            reports_abandoned: 0,
        };
        bookings
            .by_key
            .insert(external_id.to_owned(), shipment.clone());
        Some((shipment, true))
    }
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        Json(json!({ "status": status.as_u16(), "detail": detail })),
    )
        .into_response()
}

/// `POST /v1/shipments`: 201 with a new booking, 200 with the one an earlier request
/// under the same `Idempotency-Key` made, 503 during an outage, 400 without the key or
/// with one that is not the external id.
#[handler]
pub(crate) fn book(
    request: &Request,
    Json(body): Json<ShipmentRequest>,
    Data(simulator): Data<&Simulator>,
) -> Response {
    let key = request
        .header("Idempotency-Key")
        .map(str::to_owned)
        .unwrap_or_default();
    if key.is_empty() || key != body.external_id {
        return problem(
            StatusCode::BAD_REQUEST,
            "Idempotency-Key must be sent and be the external id",
        );
    }
    let Some((shipment, created)) = simulator.ledger.take(&key) else {
        return poem::Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("Retry-After", "1")
            .body("down for maintenance");
    };
    if created && !simulator.silent {
        simulator.reporter.spawn_journey(&shipment);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let answer = Booked {
        booking_id: &shipment.booking_id,
        external_id: &shipment.external_id,
    };
    (status, Json(answer)).into_response()
}

/// The body of `PUT /simulator/outage`.
#[derive(Debug, Deserialize)]
pub struct OutageSwitch {
    pub down: bool,
}

/// `PUT /simulator/outage`: while down, every booking is refused with 503.
#[handler]
pub(crate) fn outage(
    Json(switch): Json<OutageSwitch>,
    Data(simulator): Data<&Simulator>,
) -> StatusCode {
    simulator.set_outage(switch.down);
    tracing::info!(down = switch.down, "partner simulator outage switched");
    StatusCode::NO_CONTENT
}
