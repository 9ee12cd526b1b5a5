//! The operations of the API. Each handler authorises the caller's role (the RBAC table in
//! [`crate::auth`]), calls [`Deliveries`] and maps the result; everything else (parsing,
//! object-level rules, idempotency, errors) happens before or behind it.

use chrono::Utc;
use delivery_core::{
    CustomerId, DeliveryId, DeliveryState, GRAPH_JSON, GRAPH_MERMAID, GRAPH_SHA256, GRAPH_VERSION,
    OrderingId,
};
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{OpenApi, Tags};

use super::bodies::{
    Delivery, DeliveryHistory, DeliveryPage, GraphDocument, Health, OrderingDeliveries,
    PaymentEvent, PaymentEventResponse, TransitionRequest, TransitionResult,
};
use super::middleware::{RequestFingerprint, RequestId};
use super::wire::{JsonBody, Wire};
use crate::auth::{BearerAuth, Operation};
use crate::commands::Deliveries;
use crate::db;
use crate::domain::{DeliveryFilter, IdempotencyKey, Principal, RequestContext};
use crate::error::ApiError;

#[derive(Debug, Tags)]
pub enum ApiTag {
    /// Events from the payment service that create delivery orders.
    Payments,
    /// Delivery orders: read them, move them along the graph.
    Deliveries,
    /// The operators' exception queue.
    Operators,
    /// The delivery state graph this build runs.
    Graph,
    /// Liveness and readiness probes.
    Operations,
}

/// The number of items a page holds when the caller does not say.
fn default_page_size() -> u32 {
    20
}

/// What a handler needs of the request besides its parameters: what the middleware found.
#[derive(Debug)]
pub struct RequestMeta {
    request_id: RequestId,
    fingerprint: RequestFingerprint,
}

impl<'a> FromRequest<'a> for RequestMeta {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let extensions = request.extensions();
        match (
            extensions.get::<RequestId>(),
            extensions.get::<RequestFingerprint>(),
        ) {
            (Some(request_id), Some(fingerprint)) => Ok(RequestMeta {
                request_id: request_id.clone(),
                fingerprint: fingerprint.clone(),
            }),
            _ => {
                tracing::error!("the request middleware is not installed");
                Err(ApiError::Internal.into())
            }
        }
    }
}

impl RequestMeta {
    fn context(self, principal: Principal, idempotency_key: Option<String>) -> RequestContext {
        RequestContext {
            principal,
            request_id: self.request_id.0,
            idempotency: idempotency_key.map(|key| IdempotencyKey {
                key,
                fingerprint: self.fingerprint.0,
            }),
            now: Utc::now(),
        }
    }
}

/// The `/v1` API.
#[derive(Debug, Clone)]
pub struct DeliveryApi {
    pub deliveries: Deliveries,
}

#[OpenApi(prefix_path = "/v1")]
impl DeliveryApi {
    /// Report a successful payment
    ///
    /// The payment service's `payment.succeeded` event (the same JSON it publishes on
    /// RabbitMQ). An ordering with physical lines gets a delivery order in CREATED (201,
    /// `Location` names it); an ordering with only e-books gets none, and an event handled
    /// before changes nothing (both 200, `outcome` says which). For `service` principals.
    #[oai(
        path = "/payment-events",
        method = "post",
        tag = "ApiTag::Payments",
        operation_id = "ingestPaymentEvent"
    )]
    async fn ingest_payment_event(
        &self,
        auth: BearerAuth,
        meta: RequestMeta,
        /// Makes a retry safe: the same key with the same request returns the first
        /// response; with a different request it is refused (422).
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
        event: JsonBody<PaymentEvent>,
    ) -> Result<PaymentEventResponse, ApiError> {
        let ctx = meta.context(
            Operation::IngestPaymentEvent.authorize(auth)?,
            idempotency_key.0,
        );
        let outcome = self
            .deliveries
            .ingest_payment(event.0.try_into()?, &ctx)
            .await?;
        Ok(outcome.into())
    }

    /// Make a transition
    ///
    /// Moves the delivery along graph.yaml: the body names the transition (`transition`)
    /// and carries its payload. A transition the current state does not allow is 409 with
    /// `current_state` and `allowed_transitions`; one the caller's role may not make is
    /// 403; a delivery the caller may not see is 404. A REDELIVER resolution answers with
    /// the new delivery order's id.
    #[oai(
        path = "/deliveries/:id/transitions",
        method = "post",
        tag = "ApiTag::Deliveries",
        operation_id = "applyTransition"
    )]
    async fn apply_transition(
        &self,
        auth: BearerAuth,
        meta: RequestMeta,
        /// The delivery's id.
        id: Path<Wire<DeliveryId>>,
        /// Makes a retry safe: the same key with the same request returns the first
        /// response; with a different request it is refused (422).
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
        transition: JsonBody<TransitionRequest>,
    ) -> Result<JsonBody<TransitionResult>, ApiError> {
        let ctx = meta.context(
            Operation::ApplyTransition.authorize(auth)?,
            idempotency_key.0,
        );
        let outcome = self
            .deliveries
            .transition(id.0.0, transition.0.into(), &ctx)
            .await?;
        Ok(JsonBody(outcome.into()))
    }

    /// Get a delivery
    #[oai(
        path = "/deliveries/:id",
        method = "get",
        tag = "ApiTag::Deliveries",
        operation_id = "getDelivery"
    )]
    async fn delivery(
        &self,
        auth: BearerAuth,
        id: Path<Wire<DeliveryId>>,
    ) -> Result<JsonBody<Delivery>, ApiError> {
        let principal = Operation::ReadDelivery.authorize(auth)?;
        let view = self.deliveries.delivery(id.0.0, &principal).await?;
        Ok(JsonBody(view.into()))
    }

    /// List deliveries
    ///
    /// Newest first, filtered (all filters combine). Customers see only their own
    /// deliveries and partners only those assigned to them, whatever the filters say.
    #[oai(
        path = "/deliveries",
        method = "get",
        tag = "ApiTag::Deliveries",
        operation_id = "listDeliveries"
    )]
    #[allow(clippy::too_many_arguments)] // One per query parameter: the spec lists them.
    async fn deliveries(
        &self,
        auth: BearerAuth,
        /// Only deliveries in this state.
        state: Query<Option<Wire<DeliveryState>>>,
        /// Only deliveries of this ordering.
        ordering_id: Query<Option<Wire<OrderingId>>>,
        /// Only deliveries of this customer.
        customer_id: Query<Option<Wire<CustomerId>>>,
        /// Only deliveries assigned to this partner.
        #[oai(validator(min_length = 1, pattern = r"^\S(.*\S)?$"))]
        partner_id: Query<Option<String>>,
        /// The `next_cursor` of the previous page, as it was given. It is opaque: a value
        /// that is not a cursor is refused (422).
        cursor: Query<Option<String>>,
        /// How many deliveries a page holds (the service caps it).
        // u32's maximum, stated: poem-openapi's schema of an unsigned integer omits it.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "4294967295"))
        )]
        limit: Query<u32>,
    ) -> Result<JsonBody<DeliveryPage>, ApiError> {
        let principal = Operation::ListDeliveries.authorize(auth)?;
        let filter = DeliveryFilter {
            state: state.0.map(|state| state.0),
            ordering_id: ordering_id.0.map(|id| id.0),
            customer_id: customer_id.0.map(|id| id.0),
            partner_id: partner_id.0,
        };
        let page = self
            .deliveries
            .deliveries(filter, cursor.0, limit.0.into(), &principal)
            .await?;
        Ok(JsonBody(page.into()))
    }

    /// List an ordering's deliveries
    ///
    /// Every delivery order of the ordering the caller may see, oldest first: a redelivery
    /// comes after the delivery it replaces.
    #[oai(
        path = "/orderings/:id/deliveries",
        method = "get",
        tag = "ApiTag::Deliveries",
        operation_id = "listOrderingDeliveries"
    )]
    async fn ordering_deliveries(
        &self,
        auth: BearerAuth,
        /// The ordering's id (the ordering domain's).
        id: Path<Wire<OrderingId>>,
    ) -> Result<JsonBody<OrderingDeliveries>, ApiError> {
        let principal = Operation::ListOrderingDeliveries.authorize(auth)?;
        let views = self
            .deliveries
            .ordering_deliveries(&id.0.0, &principal)
            .await?;
        Ok(JsonBody(OrderingDeliveries {
            ordering_id: id.0,
            items: views.into_iter().map(Delivery::from).collect(),
        }))
    }

    /// Get a delivery's history
    ///
    /// The audit trail: every event, oldest first, with who made it and in which request.
    #[oai(
        path = "/deliveries/:id/history",
        method = "get",
        tag = "ApiTag::Deliveries",
        operation_id = "getDeliveryHistory"
    )]
    async fn history(
        &self,
        auth: BearerAuth,
        id: Path<Wire<DeliveryId>>,
    ) -> Result<JsonBody<DeliveryHistory>, ApiError> {
        let principal = Operation::ReadHistory.authorize(auth)?;
        let entries = self.deliveries.history(id.0.0, &principal).await?;
        Ok(JsonBody(DeliveryHistory {
            delivery_id: id.0,
            items: entries.into_iter().map(Into::into).collect(),
        }))
    }

    /// List the exception queue
    ///
    /// Failed deliveries and those pending with an operator, the longest waiting first.
    #[oai(
        path = "/operator/queue",
        method = "get",
        tag = "ApiTag::Operators",
        operation_id = "listOperatorQueue"
    )]
    async fn operator_queue(
        &self,
        auth: BearerAuth,
        /// The `next_cursor` of the previous page, as it was given. It is opaque: a value
        /// that is not a cursor is refused (422).
        cursor: Query<Option<String>>,
        /// How many deliveries a page holds (the service caps it).
        // u32's maximum, stated: poem-openapi's schema of an unsigned integer omits it.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "4294967295"))
        )]
        limit: Query<u32>,
    ) -> Result<JsonBody<DeliveryPage>, ApiError> {
        let principal = Operation::ReadOperatorQueue.authorize(auth)?;
        let page = self
            .deliveries
            .operator_queue(cursor.0, limit.0.into(), &principal)
            .await?;
        Ok(JsonBody(page.into()))
    }

    /// Get the delivery graph
    ///
    /// graph.yaml as this build compiled it: version, canonical JSON, Mermaid diagram.
    #[oai(
        path = "/graph",
        method = "get",
        tag = "ApiTag::Graph",
        operation_id = "getGraph"
    )]
    async fn graph(&self, auth: BearerAuth) -> Result<JsonBody<GraphDocument>, ApiError> {
        Operation::ReadGraph.authorize(auth)?;
        let graph = serde_json::from_str(GRAPH_JSON).map_err(|err| {
            tracing::error!(error = %err, "GRAPH_JSON is not JSON");
            ApiError::Internal
        })?;
        Ok(JsonBody(GraphDocument {
            version: GRAPH_VERSION.to_string(),
            sha256: GRAPH_SHA256.to_owned(),
            graph,
            mermaid: GRAPH_MERMAID.to_owned(),
        }))
    }
}

/// The probes, outside `/v1` and without authentication.
#[derive(Debug, Clone)]
pub struct OperationsApi {
    pub deliveries: Deliveries,
}

#[OpenApi]
impl OperationsApi {
    /// Liveness
    ///
    /// The process answers.
    #[oai(
        path = "/healthz",
        method = "get",
        tag = "ApiTag::Operations",
        operation_id = "liveness"
    )]
    async fn healthz(&self) -> JsonBody<Health> {
        JsonBody(Health {
            status: "ok".into(),
        })
    }

    /// Readiness
    ///
    /// The database answers; 503 when it does not.
    #[oai(
        path = "/readyz",
        method = "get",
        tag = "ApiTag::Operations",
        operation_id = "readiness"
    )]
    async fn readyz(&self) -> Result<JsonBody<Health>, ApiError> {
        db::readiness(self.deliveries.db())
            .await
            .map_err(ApiError::Unavailable)?;
        Ok(JsonBody(Health {
            status: "ready".into(),
        }))
    }
}
