//! Live updates: delivery events pushed to WebSocket clients as they happen
//! (`GET /v1/live`, [`crate::http::live`]).
//!
//! Each API instance binds a transient queue of its own to `delivery.events` for every
//! routing key (`delivery.#`, [`Topology::live_queue`]) and fans what arrives out to its
//! sockets through a broadcast channel ([`LiveHub`]); each socket passes on only what its
//! principal may see ([`Audience`]). Fed from the bus rather than from the instance's own
//! commits, so a change made through any instance, or by a worker, reaches every client.
//!
//! Best effort: a client that connects late, falls too far behind, or is on an instance
//! whose broker connection drops misses events. It reads the deliveries over REST after
//! (re)connecting; `seq` orders a delivery's events.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use delivery_core::DeliveryState;
use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{LiveConfig, MessagingConfig};
use crate::domain::{Principal, PrincipalRole};
use crate::messaging::bus::{EventBus, QueueSpec, Received};
use crate::messaging::workers::{Shutdown, StopSignal, consume, shutdown_pair};
use crate::messaging::{Bus, Topology};
use crate::queries::{QUEUE_STATES, Scope};

/// A delivery event as the bus carried it, with what decides who sees it.
#[derive(Debug)]
pub struct LiveEvent {
    /// The message body, sent to clients unchanged.
    text: String,
    owners: Owners,
}

/// The fields of a delivery message (commands.rs `DeliveryMessage`) that decide who sees it.
#[derive(Debug, Deserialize)]
struct Owners {
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    partner_id: Option<String>,
    #[serde(default)]
    from: Option<DeliveryState>,
    to: DeliveryState,
}

/// What one connection is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// A customer: its own deliveries.
    Customer(String),
    /// A partner: the deliveries assigned to it.
    Partner(String),
    /// Operators and admins: the exception queue, i.e. events that put a delivery into it,
    /// move it within it, or take it out (DELIVERY_FAILED, PENDING_BY_OPERATOR).
    ExceptionQueue,
}

impl Audience {
    /// What `principal` may follow: the deliveries of its [`Scope`], where that is its
    /// own; `None` for a service (it reads the bus itself).
    pub fn of(principal: &Principal) -> Option<Audience> {
        match Scope::of(principal) {
            Scope::Customer(id) => Some(Audience::Customer(id)),
            Scope::Partner(id) => Some(Audience::Partner(id)),
            Scope::All => match principal.role {
                PrincipalRole::Operator | PrincipalRole::Admin => Some(Audience::ExceptionQueue),
                _ => None,
            },
            Scope::Nothing => None,
        }
    }

    fn sees(&self, event: &LiveEvent) -> bool {
        let owners = &event.owners;
        match self {
            Audience::Customer(id) => owners.customer_id.as_ref() == Some(id),
            Audience::Partner(id) => owners.partner_id.as_ref() == Some(id),
            Audience::ExceptionQueue => std::iter::once(owners.to)
                .chain(owners.from)
                .any(|state| QUEUE_STATES.contains(&state)),
        }
    }
}

/// The instance's fan-out of delivery events to its sockets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveHub {
    events: broadcast::Sender<Arc<LiveEvent>>,
}

impl LiveHub {
    /// A hub whose sockets may each fall `buffer` events behind.
    pub fn new(buffer: NonZeroUsize) -> LiveHub {
        LiveHub {
            events: broadcast::Sender::new(buffer.get()),
        }
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.events.subscribe()
    }

    fn publish(&self, body: &[u8]) {
        let parsed = std::str::from_utf8(body)
            .map_err(|err| err.to_string())
            .and_then(|text| {
                let owners = serde_json::from_str(text).map_err(|err| err.to_string())?;
                Ok(LiveEvent {
                    text: text.to_owned(),
                    owners,
                })
            });
        match parsed {
            // An error only says that no socket is connected.
            Ok(event) => drop(self.events.send(Arc::new(event))),
            Err(err) => tracing::warn!(error = %err, "live updates: not a delivery event"),
        }
    }

    /// Feeds the hub from `bus` until [`LiveFeed::stop`]: a transient queue of this
    /// instance's own, bound for every delivery event.
    pub fn start_feed(&self, bus: &Bus, config: &MessagingConfig) -> LiveFeed {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let queue = Topology::new(config).live_queue(&instance);
        let (stop, shutdown) = shutdown_pair();
        let task = match bus {
            Bus::RabbitMq(bus) => self.feed(Arc::new(bus.clone()), queue, shutdown),
            Bus::InProcess(bus) => self.feed(bus.clone(), queue, shutdown),
        };
        LiveFeed { stop, task }
    }

    fn feed<B: EventBus>(
        &self,
        bus: Arc<B>,
        queue: QueueSpec,
        shutdown: Shutdown,
    ) -> JoinHandle<()> {
        let hub = self.clone();
        // Published here, in the order the queue delivers, not in the settling task.
        tokio::spawn(consume(bus, queue, shutdown, move |message| {
            hub.publish(message.body());
            async move {
                if let Err(err) = message.ack().await {
                    tracing::debug!(error = %err, "live updates ack");
                }
            }
        }))
    }
}

/// A running feed.
#[derive(Debug)]
pub struct LiveFeed {
    stop: StopSignal,
    task: JoinHandle<()>,
}

impl LiveFeed {
    /// Stops consuming; the transient queue goes away with the subscription.
    pub async fn stop(self) {
        self.stop.stop();
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the live updates feed failed");
        }
    }
}

/// How a connection is kept honest: a ping every `interval`, and `timeout` to answer it or
/// to take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub interval: Duration,
    pub timeout: Duration,
}

impl From<&LiveConfig> for Heartbeat {
    fn from(config: &LiveConfig) -> Self {
        Heartbeat {
            interval: Duration::from_millis(config.live_ping_ms.get()),
            timeout: Duration::from_millis(config.live_pong_timeout_ms.get()),
        }
    }
}

/// Serves one connection: `events` that `audience` sees, as JSON text frames, and pings;
/// returns when the client leaves, stops answering, or falls too far behind.
pub async fn serve(
    socket: WebSocketStream,
    audience: Audience,
    mut events: broadcast::Receiver<Arc<LiveEvent>>,
    heartbeat: Heartbeat,
) {
    let (mut sink, mut stream) = socket.split();
    let mut ping =
        tokio::time::interval_at(Instant::now() + heartbeat.interval, heartbeat.interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Set when a ping is out; any frame from the client clears it.
    let mut answer_by: Option<Instant> = None;
    let close = loop {
        let outgoing = tokio::select! {
            event = events.recv() => match event {
                Ok(event) if audience.sees(&event) => Message::text(event.text.clone()),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => break Some((
                    CloseCode::Again,
                    format!("too slow: {missed} events missed; reconnect and re-read"),
                )),
                Err(RecvError::Closed) => break Some((CloseCode::Away, "shutting down".to_owned())),
            },
            _ = ping.tick() => {
                answer_by.get_or_insert(Instant::now() + heartbeat.timeout);
                Message::ping(Vec::new())
            }
            () = tokio::time::sleep_until(answer_by.unwrap_or_else(Instant::now)), if answer_by.is_some() => {
                break Some((CloseCode::Policy, "no answer to ping".to_owned()));
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break None,
                // Pongs and anything else the client sends: it is alive.
                Some(Ok(_)) => {
                    answer_by = None;
                    continue;
                }
            },
        };
        // A client that does not take what it is sent is not waited for.
        if !matches!(
            tokio::time::timeout(heartbeat.timeout, sink.send(outgoing)).await,
            Ok(Ok(()))
        ) {
            break None;
        }
    };
    if let Some((code, reason)) = close {
        tracing::info!(?code, %reason, "closing a live updates connection");
        let closing = sink.send(Message::close_with(code, reason));
        if let Err(err) = tokio::time::timeout(heartbeat.timeout, closing).await {
            tracing::debug!(error = %err, "live updates close");
        }
    }
}
