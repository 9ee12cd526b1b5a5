//! The delivery service: delivery-core's state machine behind an HTTP API, persisted with
//! SeaORM on SQLite (the default) or PostgreSQL.
//!
//! Data flows one way: an HTTP request is authenticated ([`auth`]) and handled by a thin
//! handler ([`http`]) that calls the domain layer ([`domain`]); a command ([`commands`])
//! loads the order, applies the transition through `delivery_core`, and in one transaction
//! writes the order, its event, the outbox row and the read models ([`projection`]); queries
//! ([`queries`]) read only the read models.

pub mod app;
pub mod auth;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod entity;
pub mod error;
pub mod http;
pub mod projection;
pub mod queries;
