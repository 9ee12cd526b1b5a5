//! The delivery partners this service works with, by name: where each one's API is and the
//! secrets its webhooks are signed with ([`Partners`]); how a new delivery is booked with
//! its partner ([`booking`]); how a webhook's signature is checked ([`signature`]); and what
//! a partner's report does to a delivery ([`webhook`]).

pub mod booking;
pub mod signature;
pub mod webhook;

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::Duration;
use delivery_core::ActorId;

use self::signature::{InvalidSecret, WebhookSecret};
use crate::config::PartnersConfig;

/// Where the partner simulator of development mode is expected to listen.
pub const SIMULATOR_BASE_URL: &str = "http://127.0.0.1:8081";

/// During a rotation a partner signs with the new secret while the old one is still
/// accepted; more than two at once would only widen what a leaked secret opens.
const MAX_SECRETS_PER_PARTNER: usize = 2;

/// A partner's name: what deliveries record as their `partner_id`, what partner tokens
/// carry and what signed webhooks name. Lower-case letters, digits, `-` and `_`, at most
/// 64, starting with a letter or digit.
fn check_name(name: &str) -> Result<(), String> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let starts_plain = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    if plain && starts_plain && name.len() <= 64 && ActorId::parse(name).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "partner name {name:?}: use 1 to 64 of a-z 0-9 - _, starting with a letter or digit"
        ))
    }
}

/// `NAME=VALUE`, with a valid name.
fn named(text: &str) -> Result<(String, &str), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let name = name.trim();
    check_name(name)?;
    Ok((name.to_owned(), value.trim()))
}

/// `--partner NAME=URL`: a partner and the base URL of its API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerEndpoint {
    pub name: String,
    pub base_url: String,
}

impl FromStr for PartnerEndpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, url) = named(text)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("partner {name}: {url:?} is not an http(s) URL"));
        }
        Ok(PartnerEndpoint {
            name,
            base_url: url.trim_end_matches('/').to_owned(),
        })
    }
}

/// `--partner-webhook-secret NAME=whsec_…`: one secret a partner signs webhooks with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerSecret {
    pub name: String,
    pub secret: WebhookSecret,
}

impl FromStr for PartnerSecret {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, secret) = named(text)?;
        let secret = secret
            .parse()
            .map_err(|err: InvalidSecret| format!("partner {name}: {err}"))?;
        Ok(PartnerSecret { name, secret })
    }
}

/// One partner: its API and its webhook secrets (one, or two during a rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub name: String,
    pub base_url: String,
    pub webhook_secrets: Vec<WebhookSecret>,
}

/// A partner configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartnerConfigError {
    #[error("partner {0} is declared twice (--partner / PARTNERS)")]
    DeclaredTwice(String),
    #[error(
        "a webhook secret is given for partner {0}, which is not declared: add --partner {0}=URL"
    )]
    UndeclaredPartner(String),
    #[error(
        "partner {0} has no webhook secret: add --partner-webhook-secret {0}=whsec_… (PARTNER_WEBHOOK_SECRETS)"
    )]
    NoSecret(String),
    #[error("partner {0} has more than {MAX_SECRETS_PER_PARTNER} webhook secrets")]
    TooManySecrets(String),
    #[error("no randomness for the development webhook secret: {0}")]
    Randomness(String),
}

/// Every partner the service knows, by name, and how far a webhook's timestamp may be
/// from now.
#[derive(Debug, Clone)]
pub struct Partners {
    by_name: BTreeMap<String, Partner>,
    webhook_tolerance: Duration,
}

impl Default for Partners {
    /// No partner at all: every webhook is refused.
    fn default() -> Self {
        Partners {
            by_name: BTreeMap::new(),
            webhook_tolerance: Duration::minutes(5),
        }
    }
}

impl Partners {
    /// The configured partners. In development mode the default partner, when not
    /// configured, gets a built-in entry (the simulator's address and a random secret made
    /// now), so that a fresh `cargo run` can take signed webhooks; elsewhere it is only
    /// warned about, since its webhooks will all be refused.
    pub fn from_config(
        config: &PartnersConfig,
        default_partner: &str,
        development: bool,
    ) -> Result<Partners, PartnerConfigError> {
        let mut by_name = BTreeMap::new();
        for endpoint in &config.partner {
            let partner = Partner {
                name: endpoint.name.clone(),
                base_url: endpoint.base_url.clone(),
                webhook_secrets: Vec::new(),
            };
            if by_name.insert(endpoint.name.clone(), partner).is_some() {
                return Err(PartnerConfigError::DeclaredTwice(endpoint.name.clone()));
            }
        }
        for given in &config.partner_webhook_secret {
            let partner = by_name
                .get_mut(&given.name)
                .ok_or_else(|| PartnerConfigError::UndeclaredPartner(given.name.clone()))?;
            partner.webhook_secrets.push(given.secret.clone());
        }
        for partner in by_name.values() {
            match partner.webhook_secrets.len() {
                0 => return Err(PartnerConfigError::NoSecret(partner.name.clone())),
                1..=MAX_SECRETS_PER_PARTNER => {}
                _ => return Err(PartnerConfigError::TooManySecrets(partner.name.clone())),
            }
        }
        if !by_name.contains_key(default_partner) {
            if development {
                let secret = WebhookSecret::random()
                    .map_err(|err| PartnerConfigError::Randomness(err.to_string()))?;
                by_name.insert(
                    default_partner.to_owned(),
                    Partner {
                        name: default_partner.to_owned(),
                        base_url: SIMULATOR_BASE_URL.to_owned(),
                        webhook_secrets: vec![secret],
                    },
                );
            } else {
                tracing::warn!(
                    partner = default_partner,
                    "the default partner is not configured (--partner, --partner-webhook-secret): its webhooks will be refused"
                );
            }
        }
        Ok(Partners {
            by_name,
            webhook_tolerance: Duration::seconds(
                i64::try_from(config.webhook_tolerance_secs).unwrap_or(i64::MAX),
            ),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Partner> {
        self.by_name.get(name)
    }

    /// How far a webhook's `webhook-timestamp` may be from now, either way.
    pub fn webhook_tolerance(&self) -> Duration {
        self.webhook_tolerance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_A: &str = "whsec_YSB0ZXN0IHdlYmhvb2sga2V5LCAyNCBi";
    const SECRET_B: &str = "whsec_b2xkIGtleSBvZiB0aGUgcGFydG5lciwgMjQgYg==";

    fn config(partners: &[&str], secrets: &[&str]) -> PartnersConfig {
        PartnersConfig {
            partner: partners
                .iter()
                .map(|p| p.parse().expect("a partner"))
                .collect(),
            partner_webhook_secret: secrets
                .iter()
                .map(|s| s.parse().expect("a secret"))
                .collect(),
            webhook_tolerance_secs: 300,
            no_partner_simulator: false,
        }
    }

    #[test]
    fn partners_come_with_their_url_and_up_to_two_secrets() {
        let config = config(
            &["dhl=https://api.dhl.example/", "ups=https://ups.example"],
            &[
                &format!("dhl={SECRET_A}"),
                &format!("dhl={SECRET_B}"),
                &format!("ups={SECRET_A}"),
            ],
        );
        let partners = Partners::from_config(&config, "dhl", false).expect("valid");
        let dhl = partners.get("dhl").expect("dhl");
        assert_eq!(dhl.base_url, "https://api.dhl.example");
        assert_eq!(dhl.webhook_secrets.len(), 2);
        assert!(partners.get("fedex").is_none());
        assert_eq!(partners.webhook_tolerance(), Duration::minutes(5));
    }

    #[test]
    fn a_configuration_that_cannot_work_is_refused_at_start() {
        let cases = [
            (
                config(&["dhl=https://a", "dhl=https://b"], &[]),
                PartnerConfigError::DeclaredTwice("dhl".into()),
            ),
            (
                config(&[], &[&format!("dhl={SECRET_A}")]),
                PartnerConfigError::UndeclaredPartner("dhl".into()),
            ),
            (
                config(&["dhl=https://a"], &[]),
                PartnerConfigError::NoSecret("dhl".into()),
            ),
            (
                config(
                    &["dhl=https://a"],
                    &[
                        &format!("dhl={SECRET_A}"),
                        &format!("dhl={SECRET_B}"),
                        &format!("dhl={SECRET_A}"),
                    ],
                ),
                PartnerConfigError::TooManySecrets("dhl".into()),
            ),
        ];
        for (config, error) in cases {
            assert_eq!(
                Partners::from_config(&config, "dhl", false).err(),
                Some(error)
            );
        }
    }

    #[test]
    fn development_mode_gives_the_default_partner_a_built_in_entry() {
        let none = config(&[], &[]);
        let dev = Partners::from_config(&none, "simulated", true).expect("valid");
        let simulated = dev.get("simulated").expect("built in");
        assert_eq!(simulated.base_url, SIMULATOR_BASE_URL);
        assert_eq!(simulated.webhook_secrets.len(), 1);
        let production = Partners::from_config(&none, "simulated", false).expect("valid");
        assert!(production.get("simulated").is_none());
    }

    #[test]
    fn names_urls_and_secrets_are_checked_as_they_are_read() {
        for text in ["DHL=https://a", "dhl", "-x=https://a", "dhl=ftp://a"] {
            assert!(text.parse::<PartnerEndpoint>().is_err(), "{text}");
        }
        assert!("dhl=whsec_c2hvcnQ=".parse::<PartnerSecret>().is_err());
    }
}
