//! Token keys and claims: HS256 and RS256 verification, the claims each role needs, and
//! development mode (ephemeral secret, printed tokens, loopback only).

mod common;

use chrono::{Duration, Utc};
use common::{Loopback, PARTNER, TestApp, config, generous_limits, jwt_config, principal};
use delivery_svc::app::{App, AppError};
use delivery_svc::auth::{
    AuthError, IdentityClaims, KeyMode, KeySetupError, PRINCIPAL_ROLES, TokenAuthority,
};
use delivery_svc::config::JwtConfig;
use delivery_svc::domain::{Principal, PrincipalRole};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::http::{Method, StatusCode};
use serde_json::json;

/// A key pair made for these tests only; it protects nothing.
const TEST_RSA_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDtWJkA/E+sIqas
zm5oClI2IGo1WKtHfpLoksvdz1CTgaGlS/31w7dCfIQ2xgNPVtwkHexeoG2kjykb
QieaJaLpWzhU4e5bywpgFYM5N068IFSwxavlo33B95ZnvdsiR9mkUNz4bGfoA3Rv
DLwz8x3z5dt7VMfU+j6jGrZzKj/UflLexZ4F1dNf3gnyzErvHwDbWuE8XbINVu4O
Mc2HSKExj3eFYb+6MrFmx6RRHtFQTR1Ci8B4Mr6otOUKHtjVOHeRnAFyVVZQ4aoa
mBI1sDMXkGZkSCnjP8YdM+U/50hnD8lzJ/LxpEwbtx3sJ+6NisEWUkw+eROKlNvS
kavNvKGvAgMBAAECggEAD1g0BCFL0VgoKHHsJ2PLbt5nn21NHYEsZEbhUUTO88pk
tfgUwifWGEFOlu/0VNPLxbX9ixyaGhJ7WNzNDKU0RBv2p143981HrXCWnENcHsOE
Vi1hcKZCQiEMo0Zd/XhhtMLZlmID0bcvduJ+5GjqXdNVfkK77KQFGqxmcUmg+M7W
Evt7vaYwXHC14IQA/13OCIXnkwKkja3PdfA66r5JvVNXJtqXtiupAkCP5Xaykq64
Oexv7JeeHTcMaWqawnVbInZOeXm40pAFztHkaUUyNoi66gQEEKs/QUkyetcqD/43
ap3dNqqNbxEJGix3M9tB7v7GHzf8+jQZUIv7RH1S0QKBgQD4s9Vu6V1xfFXJULIG
4uLG72wpTgIQnSHGIxicbz/D7sEsF8nkR+cQNSjfAJ5LEzF672VQC6rldiLU+rHb
wL21yTDeFF22KFAr6qO3j4t6BPig7ILRB/RbC8INhH6ckNdIzfA47sPFJ0lZWfla
V2SI/IjDyLXR8unOsxOmvleARwKBgQD0T3VtVf6TJ1G7/1aIuRvwEYR+egk+c2NO
9wUUozrsY6tnRSCNwrEvXh2F7qVg4Ej0ZZk/Ho5UxEtF3dHhKX+s8u132PiDkARU
Q+lIg119F32FnoEgvtFfzDyBgqKuLwV7s3W6V3q2lr/O4+VjMPxcVmgCBpVDwYjh
8a0JrxwvWQKBgQDw/sJpsXU9DTDL3YhFqAH8p/D1rYPOuZUKvOOSYzM1F9zUb1DS
BuLfD8RFJAI/2Z9u8yAHiubVZ76lBzDmM0UiLI1QBggxBat6guqWa2DKopqSxdyV
1dFxkFlAZA2Uhb437GdFpAjMuR8YmFlKs7jWDXAx2AJoKa1rAJigUX3U7QKBgFmf
1Ko5g9yj7f4Tm8EodzFIm9xyFHYOin3rbLe3ceRKZBTMbTbUF4AS/K2ncI/rd5gA
tYlMQlaidCK7T0VUnfvqWmc+91v8Nzpad3gciO1c8rVUAnbqyZBlMkUokVlo8pAA
s82aTfAxuUfCnuIWlF2jbSBhHdzvYLHSoPIOhT5xAoGBANZ5qe3ph8HrOi8hyA6U
kbOPwlohyOy4juzLFvTiIcBhdjWRa9pPYeejkbtbrW6fVCtURnab+HQvJCwxvSA2
VwELqPgxfYzqQSe6QMqajgOOGeDj+epg+4n2oevh7yuUBSfxTfXuGPs4quzlssbO
ovNLnxO97+/EGBXlkFjcH5YM
-----END PRIVATE KEY-----
";

const TEST_RSA_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA7ViZAPxPrCKmrM5uaApS
NiBqNVirR36S6JLL3c9Qk4GhpUv99cO3QnyENsYDT1bcJB3sXqBtpI8pG0InmiWi
6Vs4VOHuW8sKYBWDOTdOvCBUsMWr5aN9wfeWZ73bIkfZpFDc+Gxn6AN0bwy8M/Md
8+Xbe1TH1Po+oxq2cyo/1H5S3sWeBdXTX94J8sxK7x8A21rhPF2yDVbuDjHNh0ih
MY93hWG/ujKxZsekUR7RUE0dQovAeDK+qLTlCh7Y1Th3kZwBclVWUOGqGpgSNbAz
F5BmZEgp4z/GHTPlP+dIZw/Jcyfy8aRMG7cd7CfujYrBFlJMPnkTipTb0pGrzbyh
rwIDAQAB
-----END PUBLIC KEY-----
";

/// An identity provider's RS256 token with these claims.
fn rs256_token(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(TEST_RSA_PRIVATE_KEY.as_bytes()).expect("the test key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("a token")
}

fn rs256_authority(dir: &tempfile::TempDir) -> TokenAuthority {
    let key_file = dir.path().join("idp.pem");
    std::fs::write(&key_file, TEST_RSA_PUBLIC_KEY).expect("write the public key");
    let config = JwtConfig {
        jwt_public_key_file: Some(key_file),
        ..jwt_config(None)
    };
    TokenAuthority::from_config(&config).expect("an RS256 authority")
}

#[test]
fn rs256_tokens_of_the_identity_provider_are_verified_with_its_public_key() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let authority = rs256_authority(&dir);
    assert_eq!(authority.mode(), KeyMode::PublicKey);
    assert!(
        authority.signer().is_none(),
        "the service cannot issue tokens with a public key"
    );

    let exp = (Utc::now() + Duration::hours(1)).timestamp();
    let claims = json!({"sub": "dispatch-7", "role": "partner", "partner_id": PARTNER, "iss": "delivery-svc", "aud": "delivery-api", "exp": exp});
    let principal = authority
        .verify(&rs256_token(&claims))
        .expect("a valid token");
    assert_eq!(principal.role, PrincipalRole::Partner);
    assert_eq!(principal.partner_id.as_deref(), Some(PARTNER));

    // An HS256 token, even one signed with the public key's text, is refused.
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(TEST_RSA_PUBLIC_KEY.as_bytes()),
    )
    .expect("a token");
    assert!(matches!(
        authority.verify(&hs256),
        Err(AuthError::Invalid(_))
    ));

    let wrong_issuer = json!({"sub": "x", "role": "operator", "iss": "someone", "aud": "delivery-api", "exp": exp});
    assert!(matches!(
        authority.verify(&rs256_token(&wrong_issuer)),
        Err(AuthError::Invalid(_))
    ));
    let not_yet = json!({"sub": "x", "role": "operator", "iss": "delivery-svc", "aud": "delivery-api", "exp": exp, "nbf": exp - 60});
    assert_eq!(
        authority.verify(&rs256_token(&not_yet)),
        Err(AuthError::NotYetValid)
    );
}

#[test]
fn customers_need_a_customer_id_and_partners_a_partner_id() {
    let claims = |role, customer_id: Option<&str>, partner_id: Option<&str>| IdentityClaims {
        sub: "someone".into(),
        role,
        customer_id: customer_id.map(Into::into),
        partner_id: partner_id.map(Into::into),
    };
    assert!(Principal::try_from(claims(PrincipalRole::Customer, None, None)).is_err());
    assert!(Principal::try_from(claims(PrincipalRole::Customer, Some("  "), None)).is_err());
    assert!(Principal::try_from(claims(PrincipalRole::Partner, None, None)).is_err());
    let customer = Principal::try_from(claims(PrincipalRole::Customer, Some("cust-9"), Some("p")))
        .expect("valid");
    assert_eq!(
        customer.partner_id, None,
        "a customer speaks for no partner"
    );
    let operator =
        Principal::try_from(claims(PrincipalRole::Operator, Some("cust-9"), None)).expect("valid");
    assert_eq!(
        operator.customer_id, None,
        "an operator is nobody's customer"
    );
    let blank_subject = IdentityClaims {
        sub: " ".into(),
        ..claims(PrincipalRole::Admin, None, None)
    };
    assert!(Principal::try_from(blank_subject).is_err());
}

#[test]
fn short_shared_secrets_are_refused() {
    let config = jwt_config(Some("too short".into()));
    assert!(matches!(
        TokenAuthority::from_config(&config),
        Err(KeySetupError::SecretTooShort)
    ));
}

#[tokio::test]
async fn development_mode_prints_a_working_token_for_every_role() {
    let authority = TokenAuthority::from_config(&jwt_config(None)).expect("development keys");
    assert_eq!(authority.mode(), KeyMode::Development);
    let tokens = authority.development_tokens(PARTNER, Utc::now());
    let roles: Vec<_> = tokens.iter().map(|(role, _)| *role).collect();
    assert_eq!(roles, PRINCIPAL_ROLES);
    for (role, token) in &tokens {
        let principal = authority
            .verify(token)
            .expect("a development token verifies");
        assert_eq!(principal.role, *role);
        match role {
            PrincipalRole::Customer => assert_eq!(
                principal.customer_id.map(|id| id.to_string()).as_deref(),
                Some("cust-1")
            ),
            PrincipalRole::Partner => {
                assert_eq!(principal.partner_id.as_deref(), Some(PARTNER))
            }
            _ => {}
        }
    }

    let other_process = TokenAuthority::from_config(&jwt_config(None)).expect("development keys");
    assert!(
        other_process.verify(&tokens[0].1).is_err(),
        "each start makes a new secret"
    );
}

#[tokio::test]
async fn development_mode_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("dev.db").display());
    let mut development = config(url, generous_limits());
    development.jwt = jwt_config(None);
    development.bind = "0.0.0.0:0".parse().expect("an address");
    let app = App::new(development).await.expect("the service starts");
    assert!(matches!(
        app.serve().await,
        Err(AppError::DevelopmentModeNotLoopback(_))
    ));
}

#[tokio::test]
async fn a_served_port_answers_over_real_http() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("served.db").display()
    );
    let app = App::new(config(url, generous_limits()))
        .await
        .expect("the service starts");
    let served = Loopback::bind().await.serve(app.endpoint());
    let address = served.addr;

    let client = reqwest::Client::new();
    let mut ready = None;
    for _ in 0..50 {
        if let Ok(response) = client.get(format!("http://{address}/readyz")).send().await {
            ready = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ready = ready.expect("the server answers");
    assert_eq!(ready.status().as_u16(), 200);
    let docs = client
        .get(format!("http://{address}/docs"))
        .send()
        .await
        .expect("Swagger UI");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.expect("HTML").contains("swagger"));
    let spec = client
        .get(format!("http://{address}/openapi.yaml"))
        .send()
        .await
        .expect("the spec");
    assert!(spec.text().await.expect("YAML").contains("openapi:"));
    served.stop().await;
}

#[tokio::test]
async fn the_token_subcommands_signer_makes_tokens_the_service_accepts() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("mint.db").display());
    let app = TestApp::start(config(url, generous_limits())).await;
    let authority =
        TokenAuthority::from_config(&jwt_config(Some(common::SECRET.into()))).expect("keys");
    let signer = authority.signer().expect("a shared secret signs");
    let token = signer
        .mint(
            &principal(PrincipalRole::Admin),
            Utc::now(),
            Duration::minutes(5),
        )
        .expect("a token");
    app.send(Method::GET, "/v1/graph", Some(&token), None, &[])
        .await
        .assert_status(StatusCode::OK);
}
