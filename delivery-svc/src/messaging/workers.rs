//! The background workers of a process — the outbox relay and the consumers — and what
//! they share: the shutdown signal, the retry backoff, the counters, and the consume loop
//! that resubscribes after a lost connection and settles in-flight messages before it
//! stops.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::bus::{EventBus, QueueSpec, Subscription};

/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the workers have done since start, for logs and tests.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Outbox rows the broker confirmed.
    pub published: AtomicU64,
    /// Publish attempts the broker refused or did not confirm (retried).
    pub publish_failures: AtomicU64,
    /// Payment messages handled and acknowledged (duplicates included).
    pub payments_handled: AtomicU64,
    /// Payment messages dead-lettered as malformed or invalid.
    pub dead_lettered: AtomicU64,
    /// Payment messages put back after a transient failure.
    pub requeued: AtomicU64,
}

/// Tells workers to stop. Also stops them when dropped.
#[derive(Debug)]
pub struct StopSignal(watch::Sender<bool>);

/// What a worker watches to know when to stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A linked pair.
pub fn shutdown_pair() -> (StopSignal, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (StopSignal(sender), Shutdown(receiver))
}

impl StopSignal {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once stopping is asked for (or the signal is gone).
    pub async fn wait(&mut self) {
        // An error means the sender is gone: nobody can keep us running.
        let _stopped = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `pause`, or less if stopping is asked for meanwhile.
    pub async fn sleep(&mut self, pause: Duration) {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = self.wait() => {}
        }
    }

    /// What an idle worker does between rounds: waits for `wake` (a commit of this
    /// process), then `linger` more so that one round takes the commits of the moment
    /// instead of a round each; or for `poll` (work from other processes, retries come
    /// due); or until stopping is asked for.
    pub async fn idle(&mut self, wake: &Notify, poll: Duration, linger: Duration) {
        tokio::select! {
            () = wake.notified() => self.sleep(linger).await,
            () = tokio::time::sleep(poll) => {}
            () = self.wait() => {}
        }
    }
}

/// Exponential backoff between retries of something that failed.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: MIN_BACKOFF }
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        delay
    }

    pub fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }
}

/// Consumes `queue` until `shutdown`, handing each message to `handle` (which settles it)
/// in a task of its own; the prefetch limit bounds how many run at once. When the
/// subscription ends (the connection was lost), its messages in flight are finished and it
/// subscribes again after a backoff. On shutdown it stops taking messages, lets those in
/// flight be settled, then closes the subscription, which returns the rest to the queue.
pub async fn consume<B, H, F>(bus: Arc<B>, queue: QueueSpec, mut shutdown: Shutdown, handle: H)
where
    B: EventBus,
    H: Fn(<B::Subscription as Subscription>::Message) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Backoff::default();
    while !shutdown.requested() {
        let mut subscription = match bus.subscribe(&queue).await {
            Ok(subscription) => subscription,
            Err(err) => {
                tracing::warn!(queue = %queue.name, error = %err, "cannot subscribe; retrying");
                shutdown.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        tracing::info!(queue = %queue.name, "consuming");
        let mut in_flight = JoinSet::new();
        let stopping = loop {
            tokio::select! {
                () = shutdown.wait() => break true,
                next = subscription.next() => match next {
                    Some(message) => {
                        backoff.reset();
                        in_flight.spawn(handle(message));
                    }
                    None => break false,
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        };
        while in_flight.join_next().await.is_some() {}
        subscription.close().await;
        if !stopping {
            tracing::warn!(queue = %queue.name, "subscription lost; subscribing again");
            shutdown.sleep(backoff.next_delay()).await;
        }
    }
    tracing::info!(queue = %queue.name, "consumer stopped");
}
