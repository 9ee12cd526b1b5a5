//! `POST /v1/partner/webhooks`: a delivery partner's reports, signed as Standard Webhooks
//! instead of carrying a bearer token.
//!
//! The handler reads the body as raw bytes, takes the partner's name from it (the only
//! thing believed before the signature is checked: it picks the secrets), verifies the
//! signature on those same bytes ([`crate::partner::signature`]), and only then parses the
//! report and hands it to [`Deliveries::apply_partner_report`].

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use delivery_core::{DeliveryId, DeliveryState, PartnerOrderNumber};
use poem::web::Data;
use poem::{Request, RequestBody};
use poem_openapi::param::Header;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{Object, OpenApi, Tags, Union};
use serde::Deserialize;

use super::middleware::RequestId;
use super::wire::{JsonBody, Wire, parse_json};
use crate::commands::Deliveries;
use crate::domain::{Principal, PrincipalRole, RequestContext};
use crate::error::ApiError;
use crate::partner::signature::{SignedHeaders, WebhookError, verify};
use crate::partner::webhook::{Handling, PartnerEvent, PartnerReport, WebhookOutcome};

#[derive(Debug, Tags)]
enum PartnerTag {
    /// Reports from delivery partners, signed as Standard Webhooks.
    Partners,
}

/// A partner's report in the Standard Webhooks payload form: `type` says what happened,
/// `data` to which delivery and which partner says so. A `timestamp` field may be sent; the
/// signed `webhook-timestamp` header is the one that counts.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type", one_of)]
pub enum PartnerWebhookEvent {
    #[oai(mapping = "delivery.picked_up")]
    PickedUp(PickedUpWebhook),
    #[oai(mapping = "delivery.delivered")]
    Delivered(DeliveredWebhook),
    #[oai(mapping = "delivery.failed")]
    Failed(FailedWebhook),
}

/// `delivery.picked_up`: the partner collected the parcel (→ `pick_up`).
#[derive(Debug, Clone, Object)]
pub struct PickedUpWebhook {
    pub data: PickedUpData,
}

/// The partner's name as configured here, our delivery id (the external id of the
/// booking) and the partner's own delivery order number.
#[derive(Debug, Clone, Object)]
pub struct PickedUpData {
    pub partner: String,
    pub delivery_id: Wire<DeliveryId>,
    pub partner_order_number: Wire<PartnerOrderNumber>,
}

/// `delivery.delivered`: the partner handed the parcel over (→ `deliver`).
#[derive(Debug, Clone, Object)]
pub struct DeliveredWebhook {
    pub data: DeliveredData,
}

/// The partner's name as configured here, our delivery id, and when it was delivered.
#[derive(Debug, Clone, Object)]
pub struct DeliveredData {
    pub partner: String,
    pub delivery_id: Wire<DeliveryId>,
    /// When the parcel was handed over: between the delivery order's creation and now,
    /// give or take five minutes of the partner's clock (422 otherwise).
    pub delivered_at: DateTime<Utc>,
}

/// `delivery.failed`: the delivery failed (→ `fail`). `status` is the partner's own code;
/// it is mapped onto a FailureReason (OTHER when unknown) and kept, with `message`, in the
/// failure's detail.
#[derive(Debug, Clone, Object)]
pub struct FailedWebhook {
    pub data: FailedData,
}

/// The partner's name as configured here, our delivery id, and why it failed.
#[derive(Debug, Clone, Object)]
pub struct FailedData {
    pub partner: String,
    pub delivery_id: Wire<DeliveryId>,
    /// The partner's own failure code, e.g. `RECIPIENT_UNAVAILABLE` or `customer_refused`.
    #[oai(validator(min_length = 1, max_length = 100, pattern = r"^\S(.*\S)?$"))]
    pub status: String,
    /// The partner's explanation, if any.
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub message: Option<String>,
}

impl PartnerWebhookEvent {
    /// The partner that says it sent this, the delivery, and what it reports.
    fn into_parts(self) -> (String, DeliveryId, PartnerEvent) {
        match self {
            PartnerWebhookEvent::PickedUp(PickedUpWebhook { data }) => (
                data.partner,
                data.delivery_id.0,
                PartnerEvent::PickedUp {
                    partner_order_number: data.partner_order_number.0,
                },
            ),
            PartnerWebhookEvent::Delivered(DeliveredWebhook { data }) => (
                data.partner,
                data.delivery_id.0,
                PartnerEvent::Delivered {
                    delivered_at: data.delivered_at,
                },
            ),
            PartnerWebhookEvent::Failed(FailedWebhook { data }) => (
                data.partner,
                data.delivery_id.0,
                PartnerEvent::Failed {
                    status: data.status,
                    message: data.message,
                },
            ),
        }
    }
}

/// What handling a report did: `applied` (the transition was made), `ignored` (the
/// delivery is already past it or can no longer take it; the report is kept), or
/// `duplicate` (this `webhook-id` was handled before; the rest is the first answer).
#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename = "WebhookHandling", rename_all = "snake_case")]
pub enum HandlingBody {
    Applied,
    Ignored,
    Duplicate,
}

/// The answer to a report: what was done, and the delivery's state and version after it.
// (No doc comments on the `Wire` fields: see `Wire`'s schema.)
#[derive(Debug, Clone, Object)]
pub struct PartnerWebhookResult {
    pub outcome: HandlingBody,
    pub delivery_id: Wire<DeliveryId>,
    pub state: Wire<DeliveryState>,
    /// The delivery's version after the report.
    pub version: u64,
}

impl From<WebhookOutcome> for PartnerWebhookResult {
    fn from(outcome: WebhookOutcome) -> Self {
        PartnerWebhookResult {
            outcome: match outcome.handling {
                Handling::Applied => HandlingBody::Applied,
                Handling::Ignored => HandlingBody::Ignored,
                Handling::Duplicate => HandlingBody::Duplicate,
            },
            delivery_id: Wire(outcome.delivery_id),
            state: Wire(outcome.state),
            version: outcome.version,
        }
    }
}

/// A JSON body documented as `T` but kept as the bytes that were sent: a signature is
/// checked on exactly those, before anything in them is believed.
#[derive(Debug)]
pub struct SignedJson<T> {
    bytes: Vec<u8>,
    schema: PhantomData<T>,
}

impl<T: Type> Payload for SignedJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        JsonBody::<T>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for SignedJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(SignedJson {
            bytes: <Vec<u8> as poem::FromRequest>::from_request(request, body).await?,
            schema: PhantomData,
        })
    }
}

poem_openapi::impl_apirequest_for_payload!(SignedJson<T>, T: ParseFromJSON);

/// The one field read before the signature is checked.
#[derive(Deserialize)]
struct Sender {
    data: SenderData,
}

#[derive(Deserialize)]
struct SenderData {
    partner: String,
}

/// The partner webhook API.
#[derive(Debug, Clone)]
pub struct PartnerWebhookApi {
    pub deliveries: Deliveries,
}

#[OpenApi(prefix_path = "/v1")]
impl PartnerWebhookApi {
    /// Receive a partner's report
    ///
    /// A Standard Webhook (https://www.standardwebhooks.com): `webhook-signature` holds
    /// `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` with one of
    /// the partner's secrets (`whsec_…`); several space-separated signatures may be sent.
    /// No bearer token: the signature authenticates the partner named in `data.partner`,
    /// which acts on its own deliveries only. `webhook-timestamp` must be within the
    /// tolerance (5 minutes by default) of the service's clock.
    ///
    /// 200 says what was done (`outcome`): `applied`, `ignored` (the delivery is already
    /// past the report, or can no longer take it) or `duplicate` (this `webhook-id` was
    /// handled before). 409 means the report came too early (delivered before picked up):
    /// nothing was recorded, retry it later. A body that does not name its partner is 400;
    /// an unknown partner, a signature that does not verify or a stale timestamp is 403; a
    /// delivery that is not the partner's is 404. Nothing is applied on any error.
    #[oai(
        path = "/partner/webhooks",
        method = "post",
        tag = "PartnerTag::Partners",
        operation_id = "receivePartnerWebhook"
    )]
    async fn receive(
        &self,
        request_id: Data<&RequestId>,
        /// The message's id: the same on every retry of one report.
        #[oai(name = "webhook-id")]
        webhook_id: Header<String>,
        /// When the message was signed, in seconds since 1970-01-01T00:00:00Z.
        #[oai(name = "webhook-timestamp")]
        webhook_timestamp: Header<String>,
        /// `v1,<base64 signature>`, space-separated when there are several.
        #[oai(name = "webhook-signature")]
        webhook_signature: Header<String>,
        body: SignedJson<PartnerWebhookEvent>,
    ) -> Result<JsonBody<PartnerWebhookResult>, ApiError> {
        let now = Utc::now();
        let bytes = &body.bytes;
        let sender: Sender = serde_json::from_slice(bytes).map_err(|err| {
            WebhookError::Malformed(format!(
                "the body must be JSON naming its partner in `data.partner`: {err}"
            ))
        })?;
        let partners = self.deliveries.partners();
        let partner = partners
            .get(&sender.data.partner)
            .ok_or_else(|| WebhookError::UnknownPartner(sender.data.partner.clone()))?;
        let headers = SignedHeaders {
            id: &webhook_id.0,
            timestamp: &webhook_timestamp.0,
            signature: &webhook_signature.0,
        };
        let id = verify(
            &partner.webhook_secrets,
            &headers,
            bytes,
            now,
            partners.webhook_tolerance(),
        )?;
        let event: PartnerWebhookEvent = parse_json(bytes)?;
        let (named, delivery_id, event) = event.into_parts();
        // The partner was read from the same signed bytes; this only guards that reading.
        if named != partner.name {
            return Err(WebhookError::Malformed("`data.partner` is ambiguous".into()).into());
        }
        let ctx = RequestContext {
            principal: Principal {
                role: PrincipalRole::Partner,
                subject: partner.name.clone(),
                customer_id: None,
                partner_id: Some(partner.name.clone()),
            },
            request_id: request_id.0.0.clone(),
            idempotency: None,
            now,
        };
        let report = PartnerReport {
            partner: partner.name.clone(),
            webhook_id: id.to_owned(),
            delivery_id,
            event,
        };
        let outcome = self.deliveries.apply_partner_report(report, &ctx).await?;
        Ok(JsonBody(outcome.into()))
    }
}
