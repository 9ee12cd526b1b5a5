//! `delivery-svc token` as a developer runs it: the binary, its flags, its output.

use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn token(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_delivery-svc"))
        .arg("token")
        .args([
            "--role",
            "customer",
            "--sub",
            "ada",
            "--customer-id",
            "cust-1",
        ])
        .args(args)
        .env("JWT_SECRET", "a-secret-for-the-cli-test-only-32b")
        .env_remove("JWT_PUBLIC_KEY_FILE")
        .env_remove("DATABASE_URL")
        .output()
        .expect("the binary runs")
}

/// The seconds between the token's `iat` and its `exp`.
fn lifetime(output: &Output) -> i64 {
    let stdout = String::from_utf8(output.stdout.clone()).expect("UTF-8");
    let payload = stdout.trim().split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
            .expect("JSON claims");
    claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat")
}

#[test]
fn the_lifetime_takes_a_unit_like_every_other_duration_setting() {
    for (ttl, seconds) in [("90s", 90), ("30m", 1800), ("12h", 43_200), ("7d", 604_800)] {
        let output = token(&["--ttl", ttl]);
        assert!(output.status.success(), "{ttl}: {output:?}");
        assert_eq!(lifetime(&output), seconds, "{ttl}");
    }
    assert_eq!(lifetime(&token(&[])), 3600, "the default is an hour");
}

#[test]
fn a_lifetime_without_a_unit_or_over_a_century_is_refused_with_the_reason() {
    for (ttl, reason) in [
        ("3600", "end with a unit"),
        ("99999999d", "longer than 100 years"),
    ] {
        let output = token(&["--ttl", ttl]);
        assert_eq!(output.status.code(), Some(2), "{ttl}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--ttl"), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
        assert!(output.stdout.is_empty(), "{ttl}: no token printed");
    }
}
