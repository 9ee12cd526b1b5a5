//! Who is calling, and what they may call.
//!
//! - Authentication: OAuth2 bearer JWTs, HS256 with a shared secret or RS256 with the
//!   identity provider's public key ([`TokenAuthority`]); `exp`, `nbf`, `iss` and `aud` are
//!   checked, and the claims `sub`, `role`, `customer_id`, `partner_id` become a
//!   [`Principal`]. Without a key the service runs in development mode with an ephemeral
//!   secret and prints a token per role ([`TokenAuthority::development`]).
//! - Authorisation by role: [`Operation::permission`] is the RBAC table, the one place that
//!   says which role may call which endpoint; the HTTP layer enforces it, `docs/security.md`
//!   shows it and the tests walk it cell by cell. Which transition a role may make comes from
//!   graph.yaml through [`PrincipalRole::graph_role`]. Object-level rules (a customer only its own deliveries)
//!   are the domain layer's, checked on the row the change saves.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use delivery_core::{ActorId, CustomerId, Transition};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use serde::{Deserialize, Serialize};

use crate::config::JwtConfig;
use crate::domain::PrincipalRole::{Admin, Customer, Operator, Partner, Service};
use crate::domain::{Principal, PrincipalRole};
use crate::error::ApiError;

/// HS256 secrets shorter than this are refused: a short secret can be brute-forced offline
/// from any token signed with it.
pub const MIN_SECRET_BYTES: usize = 32;

/// How long a development token lives.
pub const DEVELOPMENT_TOKEN_TTL: Duration = Duration::hours(12);

/// The identity a token carries (its registered claims are checked by the validation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    pub sub: String,
    pub role: PrincipalRole,
    /// Required for customers: whose deliveries they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Required for partners: which partner they speak for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
}

impl TryFrom<IdentityClaims> for Principal {
    type Error = InvalidClaims;

    /// Keeps only what the role uses, so that, say, an operator token with a stray
    /// `customer_id` is not mistaken for a customer's by an object-level check.
    fn try_from(claims: IdentityClaims) -> Result<Self, InvalidClaims> {
        // The subject becomes the actor of the events the caller makes.
        ActorId::parse(&claims.sub).map_err(|err| InvalidClaims(format!("`sub`: {err}")))?;
        let customer_id = match claims.role {
            PrincipalRole::Customer => {
                let raw = claims
                    .customer_id
                    .ok_or_else(|| InvalidClaims("a customer token needs `customer_id`".into()))?;
                Some(
                    CustomerId::parse(&raw)
                        .map_err(|err| InvalidClaims(format!("`customer_id`: {err}")))?,
                )
            }
            _ => None,
        };
        let partner_id = match claims.role {
            PrincipalRole::Partner => match claims.partner_id {
                Some(partner) if !partner.trim().is_empty() => Some(partner),
                _ => return Err(InvalidClaims("a partner token needs `partner_id`".into())),
            },
            _ => None,
        };
        Ok(Principal {
            role: claims.role,
            subject: claims.sub,
            customer_id,
            partner_id,
        })
    }
}

impl From<&Principal> for IdentityClaims {
    fn from(principal: &Principal) -> Self {
        IdentityClaims {
            sub: principal.subject.clone(),
            role: principal.role,
            customer_id: principal.customer_id.as_ref().map(ToString::to_string),
            partner_id: principal.partner_id.clone(),
        }
    }
}

/// Claims that do not make a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token claims: {0}")]
pub struct InvalidClaims(pub String);

/// Why a request is not authenticated. Every variant is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer <JWT>`")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

impl AuthError {
    /// RFC 6750's `error` code for the `WWW-Authenticate` challenge (none when no token
    /// was sent at all).
    pub fn challenge_code(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => None,
            AuthError::Expired | AuthError::NotYetValid | AuthError::Invalid(_) => {
                Some("invalid_token")
            }
        }
    }
}

impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(err: jsonwebtoken::errors::Error) -> Self {
        match err.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => {
                AuthError::Invalid("the signature does not verify".into())
            }
            ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer (`iss`)".into()),
            ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience (`aud`)".into()),
            ErrorKind::InvalidAlgorithm => AuthError::Invalid("wrong signing algorithm".into()),
            ErrorKind::MissingRequiredClaim(claim) => {
                AuthError::Invalid(format!("missing claim `{claim}`"))
            }
            ErrorKind::Json(err) => AuthError::Invalid(format!("claims: {err}")),
            _ => AuthError::Invalid("not a well-formed JWT".into()),
        }
    }
}

/// Why the token keys could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum KeySetupError {
    #[error("JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")]
    SecretTooShort,
    #[error("cannot read the JWT public key {path}: {source}")]
    ReadPublicKey {
        path: String,
        source: std::io::Error,
    },
    #[error("the JWT public key is not an RSA public key in PEM: {0}")]
    PublicKey(jsonwebtoken::errors::Error),
    #[error("no randomness for the development secret: {0}")]
    Randomness(String),
}

/// Where the verification key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// HS256 with `JWT_SECRET`.
    SharedSecret,
    /// RS256 with the identity provider's public key.
    PublicKey,
    /// HS256 with a secret made at start and forgotten at exit.
    Development,
}

/// Verifies bearer tokens and, when the service holds the signing key (shared secret or
/// development), issues them.
pub struct TokenAuthority {
    key: DecodingKey,
    validation: Validation,
    signer: Option<TokenSigner>,
    mode: KeyMode,
}

impl fmt::Debug for TokenAuthority {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl TokenAuthority {
    pub fn from_config(config: &JwtConfig) -> Result<Self, KeySetupError> {
        match (&config.jwt_secret, &config.jwt_public_key_file) {
            (Some(secret), _) => {
                Self::shared_secret(secret.as_bytes(), config, KeyMode::SharedSecret)
            }
            (None, Some(path)) => Self::public_key(path, config),
            (None, None) => Self::development(config),
        }
    }

    /// An ephemeral random HS256 secret: tokens die with the process.
    pub fn development(config: &JwtConfig) -> Result<Self, KeySetupError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|err| KeySetupError::Randomness(err.to_string()))?;
        Self::shared_secret(&secret, config, KeyMode::Development)
    }

    fn shared_secret(
        secret: &[u8],
        config: &JwtConfig,
        mode: KeyMode,
    ) -> Result<Self, KeySetupError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeySetupError::SecretTooShort);
        }
        Ok(TokenAuthority {
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256, config),
            signer: Some(TokenSigner::hs256(secret, config)),
            mode,
        })
    }

    fn public_key(path: &Path, config: &JwtConfig) -> Result<Self, KeySetupError> {
        let pem = std::fs::read(path).map_err(|source| KeySetupError::ReadPublicKey {
            path: path.display().to_string(),
            source,
        })?;
        Ok(TokenAuthority {
            key: DecodingKey::from_rsa_pem(&pem).map_err(KeySetupError::PublicKey)?,
            validation: validation(Algorithm::RS256, config),
            signer: None,
            mode: KeyMode::PublicKey,
        })
    }

    pub fn mode(&self) -> KeyMode {
        self.mode
    }

    /// The signer, when the service holds the signing key.
    pub fn signer(&self) -> Option<&TokenSigner> {
        self.signer.as_ref()
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims =
            jsonwebtoken::decode::<IdentityClaims>(token, &self.key, &self.validation)?.claims;
        Principal::try_from(claims).map_err(|err| AuthError::Invalid(err.0))
    }

    /// A ready token for each role, for development mode's start-up banner: the customer is
    /// `cust-1`, the partner `partner_id` (the partner new deliveries are assigned to).
    pub fn development_tokens(
        &self,
        partner_id: &str,
        now: DateTime<Utc>,
    ) -> Vec<(PrincipalRole, String)> {
        let Some(signer) = self
            .signer
            .as_ref()
            .filter(|_| self.mode == KeyMode::Development)
        else {
            return Vec::new();
        };
        PRINCIPAL_ROLES
            .into_iter()
            .filter_map(|role| {
                let principal = Principal::try_from(IdentityClaims {
                    sub: format!("dev-{}", role_name(role)),
                    role,
                    customer_id: Some("cust-1".into()),
                    partner_id: Some(partner_id.into()),
                })
                .ok()?;
                Some((
                    role,
                    signer.mint(&principal, now, DEVELOPMENT_TOKEN_TTL).ok()?,
                ))
            })
            .collect()
    }
}

fn validation(algorithm: Algorithm, config: &JwtConfig) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&config.jwt_issuer]);
    validation.set_audience(&[&config.jwt_audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation
}

/// Issues HS256 tokens: for the `token` subcommand, development mode and tests.
pub struct TokenSigner {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Everything a minted token says.
#[derive(Serialize)]
struct MintedClaims<'a> {
    #[serde(flatten)]
    identity: IdentityClaims,
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
}

impl TokenSigner {
    pub fn hs256(secret: &[u8], config: &JwtConfig) -> Self {
        TokenSigner {
            key: EncodingKey::from_secret(secret),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        }
    }

    /// A token for `principal`, valid from `issued_at` for `ttl` (a negative `ttl` makes an
    /// expired one, which tests need).
    pub fn mint(
        &self,
        principal: &Principal,
        issued_at: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = MintedClaims {
            identity: IdentityClaims::from(principal),
            iss: &self.issuer,
            aud: &self.audience,
            iat: issued_at.timestamp(),
            nbf: issued_at.timestamp(),
            exp: (issued_at + ttl).timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
    }
}

/// An OAuth2 bearer JWT (HS256 or RS256) whose claims say who calls: `sub`, `role` (customer,
/// partner, operator, service or admin), `customer_id` for customers, `partner_id` for
/// partners; `exp`, `iss` and `aud` are required, `nbf` is honoured.
//
// The token was already verified by the authentication middleware (the rate limiter needs
// the subject before any handler runs); the checker reads its verdict, so a token is
// verified once per request.
#[derive(Debug, SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT",
    checker = "authenticated_principal",
    rename = "bearerAuth"
)]
pub struct BearerAuth(pub Principal);

/// What the authentication middleware found, kept in the request's extensions.
#[derive(Debug, Clone)]
pub struct Authentication(pub Result<Principal, AuthError>);

async fn authenticated_principal(request: &Request, _bearer: Bearer) -> poem::Result<Principal> {
    Ok(principal_of(request)?)
}

/// The principal the authentication middleware found for `request`.
pub fn principal_of(request: &Request) -> Result<Principal, ApiError> {
    match request.extensions().get::<Authentication>() {
        Some(Authentication(Ok(principal))) => Ok(principal.clone()),
        Some(Authentication(Err(err))) => Err(ApiError::Unauthenticated(err.clone())),
        None => Err(ApiError::Unauthenticated(AuthError::Missing)),
    }
}

/// Every role a token may carry, in the order the documentation lists them.
pub const PRINCIPAL_ROLES: [PrincipalRole; 5] = [
    PrincipalRole::Customer,
    PrincipalRole::Partner,
    PrincipalRole::Operator,
    PrincipalRole::Service,
    PrincipalRole::Admin,
];

/// The name a role has in tokens and documentation.
pub const fn role_name(role: PrincipalRole) -> &'static str {
    match role {
        PrincipalRole::Customer => "customer",
        PrincipalRole::Partner => "partner",
        PrincipalRole::Operator => "operator",
        PrincipalRole::Service => "service",
        PrincipalRole::Admin => "admin",
    }
}

/// The principal roles graph.yaml lets make `transition`.
pub fn transition_roles(transition: Transition) -> Vec<PrincipalRole> {
    PRINCIPAL_ROLES
        .into_iter()
        .filter(|&role| {
            role.graph_role()
                .is_some_and(|graph_role| transition.roles().contains(&graph_role))
        })
        .collect()
}

/// An operation of the API, named by what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    IngestPaymentEvent,
    ApplyTransition,
    ReadDelivery,
    ListDeliveries,
    ListOrderingDeliveries,
    ReadHistory,
    ReadOperatorQueue,
    ReadGraph,
    SubscribeLive,
}

/// One row of the RBAC table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub method: &'static str,
    /// The route, with `{id}` for a path parameter.
    pub path: &'static str,
    /// The roles that may call it; every other role gets 403.
    pub roles: &'static [PrincipalRole],
    /// What the domain layer checks on the object itself, beyond the role.
    pub object_rule: &'static str,
}

/// The roles that may read deliveries: object-level rules narrow customers and partners.
const READERS: &[PrincipalRole] = &[Customer, Partner, Operator, Service, Admin];
/// The roles that act as some graph role ([`PrincipalRole::graph_role`]).
const TRANSITION_MAKERS: &[PrincipalRole] = &[Customer, Partner, Operator, Admin];
/// The roles with deliveries to follow live; a service reads the event stream itself.
const FOLLOWERS: &[PrincipalRole] = &[Customer, Partner, Operator, Admin];
const OWN_DELIVERIES_ONLY: &str = "customer: only its own deliveries; partner: only those assigned to it; any other delivery is 404";

impl Operation {
    /// Every operation, in the order the documentation lists them.
    pub const ALL: [Operation; 9] = [
        Operation::IngestPaymentEvent,
        Operation::ApplyTransition,
        Operation::ReadDelivery,
        Operation::ListDeliveries,
        Operation::ListOrderingDeliveries,
        Operation::ReadHistory,
        Operation::ReadOperatorQueue,
        Operation::ReadGraph,
        Operation::SubscribeLive,
    ];

    /// The RBAC table: who may call what.
    pub const fn permission(self) -> Permission {
        match self {
            Operation::IngestPaymentEvent => Permission {
                method: "POST",
                path: "/v1/payment-events",
                roles: &[Service],
                object_rule: "—",
            },
            Operation::ApplyTransition => Permission {
                method: "POST",
                path: "/v1/deliveries/{id}/transitions",
                roles: TRANSITION_MAKERS,
                object_rule: "the transition's roles in graph.yaml (transition table); \
                              customer: only its own deliveries; partner: only those assigned to it; \
                              any other delivery is 404",
            },
            Operation::ReadDelivery => Permission {
                method: "GET",
                path: "/v1/deliveries/{id}",
                roles: READERS,
                object_rule: OWN_DELIVERIES_ONLY,
            },
            Operation::ListDeliveries => Permission {
                method: "GET",
                path: "/v1/deliveries",
                roles: READERS,
                object_rule: OWN_DELIVERIES_ONLY,
            },
            Operation::ListOrderingDeliveries => Permission {
                method: "GET",
                path: "/v1/orderings/{id}/deliveries",
                roles: READERS,
                object_rule: OWN_DELIVERIES_ONLY,
            },
            Operation::ReadHistory => Permission {
                method: "GET",
                path: "/v1/deliveries/{id}/history",
                roles: READERS,
                object_rule: OWN_DELIVERIES_ONLY,
            },
            Operation::ReadOperatorQueue => Permission {
                method: "GET",
                path: "/v1/operator/queue",
                roles: &[Operator, Admin],
                object_rule: "—",
            },
            Operation::ReadGraph => Permission {
                method: "GET",
                path: "/v1/graph",
                roles: READERS,
                object_rule: "—",
            },
            Operation::SubscribeLive => Permission {
                method: "GET",
                path: "/v1/live",
                roles: FOLLOWERS,
                object_rule: "a WebSocket of delivery events; customer: only its own deliveries; \
                              partner: only those assigned to it; operator, admin: those entering, \
                              in or leaving the exception queue",
            },
        }
    }

    /// Whether `role` may call this operation.
    pub fn allows(self, role: PrincipalRole) -> bool {
        self.permission().roles.contains(&role)
    }

    /// Lets `principal` through if its role may call this operation.
    pub fn authorize(self, BearerAuth(principal): BearerAuth) -> Result<Principal, ApiError> {
        self.check(principal.role)?;
        Ok(principal)
    }

    /// 403 unless `role` may call this operation.
    pub fn check(self, role: PrincipalRole) -> Result<(), ApiError> {
        if self.allows(role) {
            return Ok(());
        }
        let permission = self.permission();
        Err(ApiError::Forbidden(format!(
            "role `{}` may not call {} {}",
            role_name(role),
            permission.method,
            permission.path
        )))
    }
}
