//! The delivery service: delivery-core's state machine behind an HTTP API, persisted with
//! SeaORM on SQLite (the default) or PostgreSQL.
//!
//! Data flows one way: an HTTP request is authenticated ([`auth`]) and handled by a thin
//! handler ([`http`]) that calls the domain layer ([`domain`]); a command ([`commands`])
//! loads the order, applies the transition through `delivery_core`, and in one batch of
//! writes, all or nothing, writes the order, its event, the outbox row and the read models
//! ([`projection`]); queries
//! ([`queries`]) read only the read models.
//!
//! Messaging ([`messaging`]) runs beside it: the payment consumer calls the same domain
//! layer as `POST /v1/payment-events`, and the outbox relay publishes the outbox rows the
//! commands wrote as delivery events; the live updates ([`live`]) push them to WebSocket
//! clients.

pub mod app;
pub mod auth;
pub mod cache;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod entity;
pub mod error;
pub mod http;
pub mod live;
pub mod messaging;
pub mod partner;
pub mod projection;
pub mod queries;
pub mod watchdog;
