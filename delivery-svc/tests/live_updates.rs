//! The live updates (`GET /v1/live`) over real WebSockets: the service listens on a
//! loopback port and `tokio-tungstenite` connects to it. On the in-process bus (SQLite,
//! and PostgreSQL when `TEST_POSTGRES_URL` is set), and with `TEST_AMQP_URL` on RabbitMQ
//! with two instances on one database.
//!
//! "Nobody else's" is checked without waiting for silence: the bus delivers a queue's
//! messages in order, so once every earlier change is published, a later change a socket
//! must see is a marker; whatever the socket would wrongly have been sent comes before it.

mod common;
#[path = "common/messaging.rs"]
mod messaging;

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::time::Duration;

use common::{
    CUSTOMER, Loopback, PARTNER, Served, new_id, on_every_database, payment_event, principal,
};
use delivery_core::{DeliveryState, Transition};
use delivery_svc::config::Config;
use delivery_svc::domain::{Principal, PrincipalRole};
use delivery_svc::entity::delivery_order;
use delivery_svc::live::LiveFeed;
use futures_util::StreamExt;
use messaging::{DEADLINE, Service, amqp_url, messaging_config, new_namespace};
use poem::http::StatusCode;
use sea_orm::prelude::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const OTHER_CUSTOMER: &str = "cust-2";
const OTHER_PARTNER: &str = "other-partner";

/// A service listening on a loopback port, with its live feed.
struct Live {
    service: Service,
    feed: LiveFeed,
    addr: SocketAddr,
    served: Served,
}

impl Live {
    /// Starts the service on `config`; with `workers`, also its outbox relay.
    async fn start(config: Config, workers: bool) -> Live {
        let mut service = Service::start(config).await;
        if workers {
            service.start_workers();
        }
        let feed = service.app.start_live_feed();
        let served = Loopback::bind().await.serve(service.app.endpoint());
        Live {
            service,
            feed,
            addr: served.addr,
            served,
        }
    }

    async fn stop(self) {
        self.served.stop().await;
        self.feed.stop().await;
        self.service.stop().await;
    }

    fn url(&self) -> String {
        format!("ws://{}/v1/live", self.addr)
    }

    /// A socket for `who`, the token in `Authorization`.
    async fn connect(&self, who: &Principal) -> Socket {
        let token = self.service.http.token(who);
        self.handshake(&[("authorization", format!("Bearer {token}"))])
            .await
            .expect("connected")
    }

    /// A socket for `who`, the token as a subprotocol, as a browser sends it.
    async fn connect_as_browser(&self, who: &Principal) -> Socket {
        let token = self.service.http.token(who);
        self.handshake(&[(
            "sec-websocket-protocol",
            format!("delivery-live.v1, bearer.{token}"),
        )])
        .await
        .expect("connected")
    }

    async fn handshake(&self, headers: &[(&'static str, String)]) -> Result<Socket, WsError> {
        let mut request = self.url().into_client_request().expect("a request");
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, value.parse().expect("a header value"));
        }
        let (socket, response) = tokio_tungstenite::connect_async(request).await?;
        if headers
            .iter()
            .any(|(name, _)| *name == "sec-websocket-protocol")
        {
            assert_eq!(
                response.headers()["sec-websocket-protocol"],
                "delivery-live.v1"
            );
        }
        Ok(socket)
    }
}

/// The next event a socket receives, as JSON.
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(DEADLINE, socket.next())
            .await
            .expect("an event within the deadline")
            .expect("the connection is open")
            .expect("a frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Events until (and with) the one `last` accepts.
async fn events_until(socket: &mut Socket, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next_event(socket).await;
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

/// `(delivery, to state)` of each event.
fn changes(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|event| {
            (
                event["delivery_id"]
                    .as_str()
                    .expect("a delivery")
                    .to_owned(),
                event["to"].as_str().expect("a state").to_owned(),
            )
        })
        .collect()
}

fn is(delivery: &str, to: &str) -> impl Fn(&Value) -> bool {
    move |event| event["delivery_id"] == delivery && event["to"] == to
}

fn change(delivery: &str, to: &str) -> (String, String) {
    (delivery.to_owned(), to.to_owned())
}

fn customer(id: &str) -> Principal {
    Principal {
        customer_id: Some(id.parse().expect("a customer id")),
        subject: format!("test-{id}"),
        ..principal(PrincipalRole::Customer)
    }
}

fn partner(id: &str) -> Principal {
    Principal {
        partner_id: Some(id.to_owned()),
        subject: format!("test-{id}"),
        ..principal(PrincipalRole::Partner)
    }
}

/// A new delivery of `customer_id` (assigned to the service's default partner).
async fn create_delivery_of(service: &Service, customer_id: &str) -> String {
    let mut payment = payment_event(&new_id("ord"), &["PHYSICAL"]);
    payment["customer_id"] = customer_id.into();
    let reply = service
        .http
        .post(
            "/v1/payment-events",
            &principal(PrincipalRole::Service),
            &payment,
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    reply.json["delivery_id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// Assigns delivery `id` to `partner_id` behind the service's back (the API has no
/// reassignment).
async fn reassign(service: &Service, id: &str, partner_id: &str) {
    let id: uuid::Uuid = id.parse().expect("a UUID");
    let updated = delivery_order::Entity::update_many()
        .col_expr(delivery_order::Column::PartnerId, Expr::value(partner_id))
        .filter(delivery_order::Column::Id.eq(id))
        .exec(service.app.deliveries().db())
        .await
        .expect("updated");
    assert_eq!(updated.rows_affected, 1);
}

/// Makes deliveries of [`CUSTOMER`] through `through` until the creation of one reaches
/// `socket` (a socket of that customer): from then on the feed is bound and every change
/// reaches it.
async fn until_fed(through: &Service, socket: &mut Socket) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut made = Vec::new();
    loop {
        made.push(through.http.create_delivery().await);
        let patience = Duration::from_secs(2);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(patience, socket.next()).await {
            if let Message::Text(text) = frame {
                let event: Value = serde_json::from_str(&text).expect("JSON");
                assert!(made.iter().any(|id| event["delivery_id"] == id.as_str()));
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live feed never delivered"
        );
    }
}

#[tokio::test]
async fn each_client_receives_its_own_deliveries_changes_and_nobody_elses() {
    on_every_database(async |url| {
        let live = Live::start(messaging_config(url, None, ""), true).await;
        let service = &live.service;
        let mut own = live.connect(&customer(CUSTOMER)).await;
        let mut other = live.connect_as_browser(&customer(OTHER_CUSTOMER)).await;
        let mut assigned = live.connect(&partner(PARTNER)).await;
        let mut other_partner = live.connect_as_browser(&partner(OTHER_PARTNER)).await;
        let mut operator = live.connect(&principal(PrincipalRole::Operator)).await;
        until_fed(service, &mut own).await;

        // Ours, to the end through the exception queue; the other customer's, picked up.
        let ours = service.http.delivery_in(DeliveryState::Resolved).await;
        let theirs = create_delivery_of(service, OTHER_CUSTOMER).await;
        service
            .http
            .transition(&theirs, Transition::PickUp, &partner(PARTNER))
            .await
            .assert_status(StatusCode::OK);
        service.all_published().await;
        // Markers. Ours, handed to the other partner, which fails it.
        let handed_over = service.http.create_delivery().await;
        service.all_published().await;
        reassign(service, &handed_over, OTHER_PARTNER).await;
        service
            .http
            .transition(&handed_over, Transition::Fail, &partner(OTHER_PARTNER))
            .await
            .assert_status(StatusCode::OK);
        service.all_published().await;
        // The other customer's last.
        let last = create_delivery_of(service, OTHER_CUSTOMER).await;

        let received = events_until(&mut own, is(&handed_over, "DELIVERY_FAILED")).await;
        assert!(
            received
                .iter()
                .all(|event| event["customer_id"] == CUSTOMER)
        );
        let received = changes(&received);
        let ours_received: Vec<_> = received.iter().filter(|(id, _)| *id == ours).collect();
        let expected = [
            "CREATED",
            "DELIVERY_FAILED",
            "PENDING_BY_OPERATOR",
            "RESOLVED",
        ];
        assert_eq!(
            ours_received,
            expected
                .map(|to| change(&ours, to))
                .iter()
                .collect::<Vec<_>>()
        );
        assert!(received.contains(&change(&handed_over, "CREATED")));

        let received = events_until(&mut other, is(&last, "CREATED")).await;
        assert_eq!(
            changes(&received),
            [
                change(&theirs, "CREATED"),
                change(&theirs, "PICKED_UP"),
                change(&last, "CREATED"),
            ]
        );

        let received = events_until(&mut assigned, is(&last, "CREATED")).await;
        assert!(received.iter().all(|event| event["partner_id"] == PARTNER));
        let received = changes(&received);
        for seen in [
            change(&ours, "RESOLVED"),
            change(&theirs, "PICKED_UP"),
            change(&handed_over, "CREATED"),
        ] {
            assert!(received.contains(&seen), "{seen:?} in {received:?}");
        }

        let received = next_event(&mut other_partner).await;
        assert_eq!(
            changes(&[received]),
            [change(&handed_over, "DELIVERY_FAILED")]
        );

        let received = events_until(&mut operator, is(&handed_over, "DELIVERY_FAILED")).await;
        assert_eq!(
            changes(&received),
            [
                change(&ours, "DELIVERY_FAILED"),
                change(&ours, "PENDING_BY_OPERATOR"),
                change(&ours, "RESOLVED"),
                change(&handed_over, "DELIVERY_FAILED"),
            ]
        );
        live.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_token_is_checked_before_the_upgrade_like_any_request() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("live.db").display());
    let live = Live::start(messaging_config(url, None, ""), false).await;
    let http = &live.service.http;

    let refused = |result: Result<Socket, WsError>| match result {
        Err(WsError::Http(response)) => {
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("a JSON body");
            (
                response.status(),
                response.headers().get("content-type").cloned(),
                body["type"].as_str().unwrap_or_default().to_owned(),
            )
        }
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("upgraded"),
    };
    let expired = http.expired_token(&customer(CUSTOMER));
    let forged = format!("{}x", http.token(&customer(CUSTOMER)));
    for headers in [
        vec![],
        vec![("authorization", format!("Bearer {expired}"))],
        vec![("authorization", format!("Bearer {forged}"))],
        vec![(
            "sec-websocket-protocol",
            format!("delivery-live.v1, bearer.{expired}"),
        )],
    ] {
        let (status, content_type, kind) = refused(live.handshake(&headers).await);
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(
            content_type
                .as_ref()
                .map(|value| value.to_str().expect("ASCII")),
            Some("application/problem+json")
        );
        assert_eq!(kind, "urn:delivery-svc:problem:unauthenticated");
    }

    // The RBAC table's row, over a real handshake (tests/http_rbac.rs cannot upgrade).
    for role in delivery_svc::auth::PRINCIPAL_ROLES {
        let token = http.token(&principal(role));
        let headers = [("authorization", format!("Bearer {token}"))];
        let allowed = delivery_svc::auth::Operation::SubscribeLive
            .permission()
            .roles
            .contains(&role);
        match live.handshake(&headers).await {
            Ok(mut socket) if allowed => socket.close(None).await.expect("closed"),
            result => {
                assert!(!allowed, "{role:?} refused");
                let (status, _, kind) = refused(result);
                assert_eq!(status, 403);
                assert_eq!(kind, "urn:delivery-svc:problem:forbidden");
            }
        }
    }
    live.stop().await;
}

#[tokio::test]
async fn the_service_pings_and_hangs_up_on_a_client_that_does_not_answer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("live.db").display());
    let mut config = messaging_config(url, None, "");
    config.live.live_ping_ms = NonZeroU64::new(100).expect("not zero");
    config.live.live_pong_timeout_ms = NonZeroU64::new(300).expect("not zero");
    let live = Live::start(config, false).await;

    // tungstenite answers pings as it reads: the connection stays up across several.
    let mut socket = live.connect(&customer(CUSTOMER)).await;
    let mut pings = 0;
    while pings < 3 {
        let frame = tokio::time::timeout(DEADLINE, socket.next())
            .await
            .expect("a frame within the deadline")
            .expect("the connection is open")
            .expect("a frame");
        match frame {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected frame {other:?}"),
        }
    }

    // A client that handshakes and then never answers: pings, then a close with 1008.
    let token = live.service.http.token(&customer(CUSTOMER));
    let mut raw = TcpStream::connect(live.addr).await.expect("connected");
    let handshake = format!(
        "GET /v1/live HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        live.addr
    );
    raw.write_all(handshake.as_bytes()).await.expect("sent");
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, raw.read_to_end(&mut received))
        .await
        .expect("hung up within the deadline")
        .expect("read");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let frames = &received[text.find("\r\n\r\n").expect("headers end") + 4..];
    assert_eq!(&frames[..2], [0x89, 0x00], "a ping first: {frames:?}");
    // A close frame (0x88) with code 1008, the last frame sent.
    let close = frames
        .windows(4)
        .position(|window| window[0] == 0x88 && window[2..4] == [0x03, 0xf0])
        .expect("a close frame with 1008");
    assert!(
        String::from_utf8_lossy(&frames[close + 4..]).contains("no answer to ping"),
        "{frames:?}"
    );
    live.stop().await;
}

#[tokio::test]
async fn a_change_made_through_one_instance_reaches_a_socket_on_another() {
    let Some(amqp) = amqp_url() else { return };
    on_every_database(async |url| {
        let namespace = new_namespace();
        // A: API and workers; B: API only, the sockets.
        let a = Live::start(messaging_config(url.clone(), Some(&amqp), &namespace), true).await;
        let b = Live::start(messaging_config(url, Some(&amqp), &namespace), false).await;
        let mut own = b.connect(&customer(CUSTOMER)).await;
        let mut other = b.connect_as_browser(&customer(OTHER_CUSTOMER)).await;
        let mut operator = b.connect(&principal(PrincipalRole::Operator)).await;
        until_fed(&a.service, &mut own).await;

        let ours = a.service.http.delivery_in(DeliveryState::Resolved).await;
        a.service.all_published().await;
        let last = create_delivery_of(&a.service, OTHER_CUSTOMER).await;

        let received = events_until(&mut own, is(&ours, "RESOLVED")).await;
        let received: Vec<_> = changes(&received)
            .into_iter()
            .filter(|(id, _)| *id == ours)
            .collect();
        let expected = [
            "CREATED",
            "DELIVERY_FAILED",
            "PENDING_BY_OPERATOR",
            "RESOLVED",
        ];
        assert_eq!(received, expected.map(|to| change(&ours, to)));
        let received = events_until(&mut operator, is(&ours, "RESOLVED")).await;
        assert_eq!(
            changes(&received),
            ["DELIVERY_FAILED", "PENDING_BY_OPERATOR", "RESOLVED"].map(|to| change(&ours, to))
        );
        let received = next_event(&mut other).await;
        assert_eq!(changes(&[received]), [change(&last, "CREATED")]);

        b.stop().await;
        a.stop().await;
    })
    .await;
}
