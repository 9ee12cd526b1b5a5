//! What the store tests share: a fresh database per test on every backend, principals,
//! request contexts and payment events.

use chrono::{DateTime, Duration, TimeZone, Utc};
use delivery_core::{CustomerId, DeliveryId, Format, Line, OrderLine, ShippingAddress};
use delivery_svc::commands::Deliveries;
use delivery_svc::config::PoolConfig;
use delivery_svc::db;
use delivery_svc::domain::{
    IdempotencyKey, PaymentSucceeded, Principal, PrincipalRole, RequestContext,
};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Barrier;

#[path = "databases.rs"]
mod databases;

/// The partner new delivery orders are assigned to.
pub const PARTNER: &str = "dhl";

/// Runs `test` on a fresh SQLite database, then on a fresh PostgreSQL schema when
/// `TEST_POSTGRES_URL` is set (with `REQUIRE_SERVICES` set, its absence fails the test).
pub async fn on_every_backend(test: impl AsyncFn(&Deliveries)) {
    databases::on_every_database("store", async |url| {
        let deliveries = migrated(&url).await;
        test(&deliveries).await;
        deliveries
            .db()
            .clone()
            .close()
            .await
            .expect("close the pool");
    })
    .await;
}

/// A service on a database at `url`, migrated.
pub async fn migrated(url: &str) -> Deliveries {
    let connection = db::connect(url, PoolConfig::default().database_pool_size)
        .await
        .expect("connect");
    db::migrate(&connection).await.expect("migrate");
    Deliveries::new(connection, PARTNER)
}

/// A moment of the test's day: `seconds` after noon.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("a valid date")
        + Duration::seconds(seconds)
}

pub fn service() -> Principal {
    principal(PrincipalRole::Service, "payments")
}

pub fn customer(id: &str) -> Principal {
    Principal {
        customer_id: Some(id.parse().expect("a customer id")),
        ..principal(PrincipalRole::Customer, &format!("user-{id}"))
    }
}

pub fn partner(id: &str) -> Principal {
    Principal {
        partner_id: Some(id.to_owned()),
        ..principal(PrincipalRole::Partner, &format!("partner-{id}"))
    }
}

pub fn operator() -> Principal {
    principal(PrincipalRole::Operator, "op-ada")
}

pub fn admin() -> Principal {
    principal(PrincipalRole::Admin, "admin-grace")
}

fn principal(role: PrincipalRole, subject: &str) -> Principal {
    Principal {
        role,
        subject: subject.to_owned(),
        customer_id: None,
        partner_id: None,
    }
}

/// A request of `principal` at `at(seconds)`, without an idempotency key.
pub fn ctx(principal: &Principal, seconds: i64) -> RequestContext {
    RequestContext {
        principal: principal.clone(),
        request_id: format!("req-{}", uuid::Uuid::new_v4().simple()),
        idempotency: None,
        now: at(seconds),
    }
}

/// The same, with an `Idempotency-Key`.
pub fn ctx_with_key(
    principal: &Principal,
    seconds: i64,
    key: &str,
    fingerprint: &str,
) -> RequestContext {
    RequestContext {
        idempotency: Some(IdempotencyKey {
            key: key.to_owned(),
            fingerprint: fingerprint.to_owned(),
        }),
        ..ctx(principal, seconds)
    }
}

/// A `payment.succeeded` of `ordering_id` for `customer_id`, with a physical book and an
/// e-book.
pub fn payment(ordering_id: &str, customer_id: &str) -> PaymentSucceeded {
    PaymentSucceeded {
        event_id: uuid::Uuid::new_v4(),
        kind: "payment.succeeded".into(),
        occurred_at: at(0),
        payment_id: format!("pay-{ordering_id}").parse().expect("a payment id"),
        ordering_id: ordering_id.parse().expect("an ordering id"),
        customer_id: customer_id.parse::<CustomerId>().expect("a customer id"),
        shipping_address: ShippingAddress {
            name: line("Ada Lovelace"),
            line1: line("12 St James's Square"),
            line2: None,
            city: line("London"),
            postal_code: line("SW1Y 4JH"),
            country: "GB".parse().expect("a country"),
        },
        lines: vec![
            book("isbn-9780141439518", Format::Physical),
            book("isbn-9780141439600", Format::Ebook),
        ],
    }
}

/// The same with e-books only.
pub fn ebook_only_payment(ordering_id: &str, customer_id: &str) -> PaymentSucceeded {
    PaymentSucceeded {
        lines: vec![book("isbn-9780141439600", Format::Ebook)],
        ..payment(ordering_id, customer_id)
    }
}

fn book(product_id: &str, format: Format) -> OrderLine {
    OrderLine {
        product_id: product_id.parse().expect("a product id"),
        title: line("Pride and Prejudice"),
        format,
        quantity: 1.try_into().expect("a quantity"),
    }
}

fn line(text: &str) -> Line {
    text.parse().expect("a line")
}

/// Creates a delivery order for a new ordering of `customer_id`, at `at(seconds)`.
pub async fn new_delivery(deliveries: &Deliveries, customer_id: &str, seconds: i64) -> DeliveryId {
    let ordering_id = format!("ord-{}", uuid::Uuid::new_v4().simple());
    match deliveries
        .ingest_payment(
            payment(&ordering_id, customer_id),
            &ctx(&service(), seconds),
        )
        .await
        .expect("the payment is ingested")
    {
        delivery_svc::domain::PaymentOutcome::Created { delivery_id } => delivery_id,
        other => panic!("expected a delivery order, got {other:?}"),
    }
}

/// Runs `call(0)` … `call(n - 1)` on tasks of their own, released together so that they
/// race, and returns their results in that order.
pub async fn at_once<T, F>(n: i64, call: impl Fn(i64) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let start = Arc::new(Barrier::new(usize::try_from(n).expect("a count")));
    let tasks: Vec<_> = (0..n)
        .map(|attempt| {
            let (start, call) = (Arc::clone(&start), call(attempt));
            tokio::spawn(async move {
                start.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("the task ran"));
    }
    results
}
