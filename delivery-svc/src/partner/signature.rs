//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}` with the partner's secret, sent base64-encoded
//! as `v1,<signature>` in `webhook-signature` (space-separated, several during a secret
//! rotation). Checked on the raw body bytes, in constant time, against every secret the
//! partner has, with the timestamp within a tolerance of now (the replay guard).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a secret in its Standard Webhooks text form.
const SECRET_PREFIX: &str = "whsec_";
/// The only signature scheme this service takes (symmetric HMAC-SHA256).
const SIGNATURE_VERSION: &str = "v1";
/// Standard Webhooks' bounds on a secret's key: long enough not to be guessed.
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;
/// Longest `webhook-id` kept: it is stored in the inbox.
const MAX_WEBHOOK_ID_CHARS: usize = 255;

/// A partner's webhook signing key. Its `Debug` output hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A secret that is not `whsec_<base64>` of 24 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a webhook secret is `whsec_` followed by the base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes: {0}"
)]
pub struct InvalidSecret(&'static str);

impl FromStr for WebhookSecret {
    type Err = InvalidSecret;

    fn from_str(text: &str) -> Result<Self, InvalidSecret> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(InvalidSecret("the `whsec_` prefix is missing"))?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| InvalidSecret("not base64"))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(InvalidSecret("wrong length"));
        }
        Ok(WebhookSecret(key))
    }
}

impl fmt::Display for WebhookSecret {
    /// The `whsec_` form, for whoever configures the sender (development mode prints it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_PREFIX}{}", BASE64.encode(&self.0))
    }
}

impl WebhookSecret {
    /// A new random secret of 32 bytes.
    pub fn random() -> Result<WebhookSecret, getrandom::Error> {
        let mut key = vec![0; 32];
        getrandom::fill(&mut key)?;
        Ok(WebhookSecret(key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value a sender puts on `body`: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("{SIGNATURE_VERSION},{}", BASE64.encode(tag))
    }

    /// Whether `signature` (raw HMAC bytes) is ours for this message, compared in constant
    /// time so that the comparison's duration tells an attacker nothing.
    fn verifies(&self, id: &str, timestamp: i64, body: &[u8], signature: &[u8]) -> bool {
        self.mac(id, timestamp, body)
            .verify_slice(signature)
            .is_ok()
    }
}

/// The three Standard Webhooks headers of a request, as sent.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

/// Why a webhook is refused before anything in it is believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A header or the body is not what Standard Webhooks prescribes.
    #[error("malformed webhook: {0}")]
    Malformed(String),
    /// The body names a partner this service is not configured for.
    #[error("no partner named {0:?} is configured")]
    UnknownPartner(String),
    /// No `v1` signature verifies with any of the partner's secrets.
    #[error("the webhook signature does not verify with any of the partner's secrets")]
    BadSignature,
    /// `webhook-timestamp` is further from now than the tolerance: a replay, or a clock
    /// far off.
    #[error(
        "webhook-timestamp {timestamp} is {off_by_secs} s from the service's clock; at most {tolerance_secs} s is accepted"
    )]
    OutsideTolerance {
        timestamp: i64,
        off_by_secs: i64,
        tolerance_secs: i64,
    },
}

/// Checks that `body` with `headers` was signed by one of `secrets` and that its timestamp
/// is within `tolerance` of `now`. Returns the message's id, the key of its deduplication.
///
/// The signature is checked first, so that only a genuine sender learns about its clock.
pub fn verify<'a>(
    secrets: &[WebhookSecret],
    headers: &SignedHeaders<'a>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<&'a str, WebhookError> {
    let id = headers.id;
    if id.is_empty()
        || id.chars().count() > MAX_WEBHOOK_ID_CHARS
        || !id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(WebhookError::Malformed(format!(
            "webhook-id must be 1 to {MAX_WEBHOOK_ID_CHARS} printable ASCII characters"
        )));
    }
    let timestamp: i64 = headers.timestamp.trim().parse().map_err(|_| {
        WebhookError::Malformed("webhook-timestamp must be whole seconds since 1970".into())
    })?;
    // Other schemes (e.g. `v1a`, asymmetric) are skipped, as the standard asks; so are
    // entries that do not decode: one good signature is enough.
    let genuine = headers
        .signature
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == SIGNATURE_VERSION)
        .filter_map(|(_, encoded)| BASE64.decode(encoded).ok())
        .any(|signature| {
            secrets
                .iter()
                .any(|secret| secret.verifies(id, timestamp, body, &signature))
        });
    if !genuine {
        return Err(WebhookError::BadSignature);
    }
    let off_by_secs = now.timestamp().saturating_sub(timestamp).saturating_abs();
    if off_by_secs > tolerance.num_seconds() {
        return Err(WebhookError::OutsideTolerance {
            timestamp,
            off_by_secs,
            tolerance_secs: tolerance.num_seconds(),
        });
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// 24 bytes: `whsec_` + base64 of "a test webhook key, 24 b".
    const SECRET: &str = "whsec_YSB0ZXN0IHdlYmhvb2sga2V5LCAyNCBi";

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_764_000_000, 0)
            .single()
            .expect("a time")
    }

    fn secret(text: &str) -> WebhookSecret {
        text.parse().expect("a secret")
    }

    /// The value `openssl` gives for the same key and message:
    /// `printf 'msg_1.1764000000.{"a":1}' | openssl dgst -sha256 -hmac 'a test webhook key, 24 b' -binary | base64`
    #[test]
    fn signs_as_openssl_does() {
        assert_eq!(
            secret(SECRET).sign("msg_1", 1_764_000_000, br#"{"a":1}"#),
            "v1,bkhitBMprC3ww++aYOy6rSZvXO2ha3AppJ/FbFfRkAc="
        );
    }

    #[test]
    fn a_secret_round_trips_through_its_text_form_and_hides_in_debug() {
        let key = WebhookSecret::random().expect("randomness");
        assert_eq!(key.to_string().parse::<WebhookSecret>(), Ok(key.clone()));
        assert_eq!(format!("{key:?}"), "WebhookSecret(<redacted>)");
    }

    #[test]
    fn secrets_that_are_not_whsec_base64_of_24_to_64_bytes_are_refused() {
        for text in [
            "YSB0ZXN0IHdlYmhvb2sga2V5LCAyNCBi",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
        ] {
            assert!(text.parse::<WebhookSecret>().is_err(), "{text}");
        }
    }

    /// Verifies as a partner with an old and a current secret would be.
    fn check(signature: &str, timestamp: &str, body: &[u8]) -> Result<String, WebhookError> {
        let headers = SignedHeaders {
            id: "msg_1",
            timestamp,
            signature,
        };
        let old = secret("whsec_b2xkIGtleSBvZiB0aGUgcGFydG5lciwgMjQgYg==");
        verify(
            &[old, secret(SECRET)],
            &headers,
            body,
            now(),
            Duration::minutes(5),
        )
        .map(str::to_owned)
    }

    #[test]
    fn a_signature_by_any_current_secret_among_other_entries_verifies() {
        let body = br#"{"a":1}"#;
        let good = secret(SECRET).sign("msg_1", now().timestamp(), body);
        let listed = format!("v1a,c29tZXRoaW5n v1,bm90IGl0 {good}");
        assert_eq!(
            check(&listed, &now().timestamp().to_string(), body),
            Ok("msg_1".to_owned())
        );
    }

    #[test]
    fn a_changed_byte_a_foreign_key_or_another_id_does_not_verify() {
        let ts = now().timestamp();
        let signature = secret(SECRET).sign("msg_1", ts, br#"{"a":1}"#);
        assert_eq!(
            check(&signature, &ts.to_string(), br#"{"a":2}"#),
            Err(WebhookError::BadSignature)
        );
        let foreign = secret("whsec_Zm9yZWlnbiBrZXkgb2YgYW5vdGhlciBzZW5kZXI=").sign(
            "msg_1",
            ts,
            br#"{"a":1}"#,
        );
        assert_eq!(
            check(&foreign, &ts.to_string(), br#"{"a":1}"#),
            Err(WebhookError::BadSignature)
        );
        let other_id = secret(SECRET).sign("msg_2", ts, br#"{"a":1}"#);
        assert_eq!(
            check(&other_id, &ts.to_string(), br#"{"a":1}"#),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn the_timestamp_must_be_within_the_tolerance_either_way() {
        let body = b"{}";
        for (offset, accepted) in [(-300, true), (300, true), (-301, false), (301, false)] {
            let ts = now().timestamp() + offset;
            let signature = secret(SECRET).sign("msg_1", ts, body);
            let verdict = check(&signature, &ts.to_string(), body);
            assert_eq!(verdict.is_ok(), accepted, "{offset}: {verdict:?}");
            if !accepted {
                assert!(
                    matches!(verdict, Err(WebhookError::OutsideTolerance { .. })),
                    "{verdict:?}"
                );
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused_as_such() {
        let signature = secret(SECRET).sign("msg_1", 1, b"{}");
        assert!(matches!(
            check(&signature, "yesterday", b"{}"),
            Err(WebhookError::Malformed(_))
        ));
    }
}
