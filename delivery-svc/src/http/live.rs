//! `GET /v1/live`: the live updates' WebSocket ([`crate::live`]). It is not in the OpenAPI
//! document, which cannot describe a WebSocket; README.md and docs/security.md describe it.
//!
//! The token is checked before the upgrade, like any request's: a bad one is a 401
//! problem, a service principal a 403. Browsers cannot set `Authorization` on a
//! WebSocket, so the token may also come as the subprotocol `bearer.<token>` beside
//! [`SUBPROTOCOL`], which the answer names ([`super::middleware::Authenticate`] reads it).

use poem::web::websocket::WebSocket;
use poem::{Endpoint, FromRequest, IntoResponse, Request, Response};

use crate::auth::{BearerAuth, Operation, principal_of};
use crate::error::ApiError;
use crate::live::{self, Audience, Heartbeat, LiveHub};

/// Where the endpoint is.
pub const PATH: &str = "/v1/live";

/// The subprotocol a client asks for (and the service answers with): JSON text frames,
/// one delivery event each.
pub const SUBPROTOCOL: &str = "delivery-live.v1";

/// The endpoint.
#[derive(Debug, Clone)]
pub struct LiveEndpoint {
    pub hub: LiveHub,
    pub heartbeat: Heartbeat,
}

impl Endpoint for LiveEndpoint {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let principal = Operation::SubscribeLive.authorize(BearerAuth(principal_of(&request)?))?;
        let audience = Audience::of(&principal)
            .ok_or_else(|| ApiError::Forbidden("this principal has nothing to follow".into()))?;
        let socket = WebSocket::from_request_without_body(&request).await?;
        // Subscribed before the answer: nothing published after it is missed.
        let events = self.hub.subscribe();
        let heartbeat = self.heartbeat;
        Ok(socket
            .protocols([SUBPROTOCOL])
            .on_upgrade(move |socket| live::serve(socket, audience, events, heartbeat))
            .into_response())
    }
}
