//! Which methods each route takes, for the `Allow` header a 405 must carry (RFC 9110
//! §15.5.6): poem's router refuses the method but does not say what it would take.
//!
//! The table is read from the OpenAPI document itself, so a new operation is listed
//! without an edit here.

use std::sync::Arc;

use poem::error::MethodNotAllowedError;
use poem::{Endpoint, Middleware, Request};
use serde_json::Value;

use crate::error::ApiError;

/// The methods an OpenAPI path item may hold, in the order `Allow` lists them.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

/// A route's path as the spec writes it (`/v1/deliveries/{id}`), split at `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// `None` for a `{parameter}` segment, which matches any one non-empty segment.
    segments: Vec<Option<String>>,
}

impl PathTemplate {
    pub fn new(template: &str) -> PathTemplate {
        PathTemplate {
            segments: template
                .split('/')
                .map(|segment| {
                    let parameter = segment.starts_with('{') && segment.ends_with('}');
                    (!parameter).then(|| segment.to_owned())
                })
                .collect(),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        let mut segments = path.split('/');
        self.segments.iter().all(|template| {
            segments.next().is_some_and(|segment| match template {
                Some(literal) => literal == segment,
                None => !segment.is_empty(),
            })
        }) && segments.next().is_none()
    }

    /// What the route of `path` holds, among `routes`: of the templates that match it,
    /// the one with the most literal segments, as the router picks.
    pub fn route<'a, T>(
        routes: impl IntoIterator<Item = (&'a PathTemplate, T)>,
        path: &str,
    ) -> Option<T> {
        routes
            .into_iter()
            .filter(|(template, _)| template.matches(path))
            .max_by_key(|(template, _)| template.segments.iter().flatten().count())
            .map(|(_, value)| value)
    }
}

/// One route of the spec and its `Allow` value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RouteMethods {
    template: PathTemplate,
    allow: String,
}

impl RouteMethods {
    /// The route at `template` that takes each method for which `takes` holds, and HEAD
    /// with GET.
    fn new(template: &str, takes: impl Fn(&str) -> bool) -> RouteMethods {
        RouteMethods {
            template: PathTemplate::new(template),
            allow: METHODS
                .into_iter()
                .filter(|method| takes(method) || (*method == "HEAD" && takes("GET")))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The routes of an OpenAPI document and the methods each takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedMethods {
    routes: Vec<RouteMethods>,
}

impl AllowedMethods {
    /// The table of `spec` (an OpenAPI document as JSON). poem answers HEAD with a route's
    /// GET handler, so a route with GET also takes HEAD.
    pub fn from_spec(spec: &str) -> AllowedMethods {
        let spec: Value = serde_json::from_str(spec).unwrap_or_default();
        let Some(paths) = spec["paths"].as_object() else {
            return AllowedMethods::default();
        };
        let routes = paths
            .iter()
            .map(|(template, item)| {
                RouteMethods::new(template, |method| {
                    item.get(method.to_ascii_lowercase()).is_some()
                })
            })
            .collect();
        AllowedMethods { routes }
    }

    /// The table with a route the spec does not document (the spec itself, the WebSocket)
    /// that takes `methods` (upper case).
    pub fn with_route(mut self, template: &str, methods: &[&str]) -> AllowedMethods {
        self.routes.push(RouteMethods::new(template, |method| {
            methods.contains(&method)
        }));
        self
    }

    /// The `Allow` value for a request to `path`, if a route of the spec matches it; where
    /// several do, the one with the most literal segments, as the router picks.
    pub fn allow(&self, path: &str) -> Option<&str> {
        let routes = self.routes.iter();
        PathTemplate::route(
            routes.map(|route| (&route.template, route.allow.as_str())),
            path,
        )
    }
}

impl<E: Endpoint> Middleware<E> for AllowedMethods {
    type Output = AllowedMethodsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AllowedMethodsEndpoint {
            inner,
            table: Arc::new(self.clone()),
        }
    }
}

/// Turns the router's 405 into one that says which methods the route takes.
#[derive(Debug)]
pub struct AllowedMethodsEndpoint<E> {
    inner: E,
    table: Arc<AllowedMethods>,
}

impl<E: Endpoint> Endpoint for AllowedMethodsEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, request: Request) -> poem::Result<Self::Output> {
        let path = request.uri().path().to_owned();
        self.inner.call(request).await.map_err(|err| {
            if err.is::<MethodNotAllowedError>() {
                ApiError::MethodNotAllowed {
                    allow: self.table.allow(&path).unwrap_or_default().to_owned(),
                }
                .into()
            } else {
                err
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_by_segment_and_get_brings_head() {
        let table = AllowedMethods::from_spec(
            r#"{"paths": {
                "/v1/things": {"post": {}, "get": {}},
                "/v1/things/{id}": {"get": {}, "parameters": []},
                "/v1/things/{id}/moves": {"post": {}, "delete": {}},
                "/v1/things/latest": {"put": {}}
            }}"#,
        );
        assert_eq!(table.allow("/v1/things/latest"), Some("PUT"));
        assert_eq!(table.allow("/v1/things"), Some("GET, HEAD, POST"));
        assert_eq!(table.allow("/v1/things/42"), Some("GET, HEAD"));
        assert_eq!(table.allow("/v1/things/42/moves"), Some("POST, DELETE"));
        assert_eq!(table.allow("/v1/things//moves"), None);
        assert_eq!(table.allow("/v1/things/42/other"), None);
        assert_eq!(table.allow("/v1"), None);
    }

    #[test]
    fn routes_beside_the_spec_are_listed_too() {
        let table = AllowedMethods::from_spec(r#"{"paths": {"/v1/things": {"get": {}}}}"#)
            .with_route("/v1/live", &["GET"])
            .with_route("/v1/things/{id}/feed", &["POST", "GET"]);
        assert_eq!(table.allow("/v1/live"), Some("GET, HEAD"));
        assert_eq!(table.allow("/v1/things/42/feed"), Some("GET, HEAD, POST"));
        assert_eq!(table.allow("/v1/things"), Some("GET, HEAD"));
    }
}
