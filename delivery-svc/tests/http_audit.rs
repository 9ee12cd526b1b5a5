//! Every state change is logged on the `audit` tracing target with who made it, in which
//! request, on which delivery, from which state to which.

mod common;

use common::{on_every_backend, principal};
use delivery_svc::domain::PrincipalRole::Partner;
use poem::http::StatusCode;
use serde_json::json;

/// Log output collected in memory.
#[derive(Clone, Default)]
struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// The fields of every line logged on the `audit` target.
    fn audit_lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes)
            .expect("UTF-8 logs")
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON log line"))
            .filter(|line| line["target"] == "audit")
            .map(|line| line["fields"].clone())
            .collect()
    }
}

#[tokio::test]
async fn every_state_change_is_logged_on_the_audit_target() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Global, and alone in its test binary: a thread-local subscriber can miss events whose
    // call sites other threads registered first.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let reply = app
            .transition(&id, delivery_core::Transition::PickUp, &principal(Partner))
            .await;
        reply.assert_status(StatusCode::OK);
        let request_id = reply.header("x-request-id").expect("a request id");
        let audit = logs.audit_lines();
        let created = audit
            .iter()
            .find(|line| line["delivery_id"] == id && line["to"] == "CREATED");
        assert_eq!(
            created.map(|line| line["role"].clone()),
            Some(json!("service"))
        );
        let picked_up = audit
            .iter()
            .find(|line| line["request_id"] == request_id)
            .expect("the pick-up is audited");
        assert_eq!(picked_up["role"], "partner");
        assert_eq!(picked_up["subject"], "test-partner");
        assert_eq!(picked_up["delivery_id"], id);
        assert_eq!(
            (picked_up["from"].clone(), picked_up["to"].clone()),
            (json!("CREATED"), json!("PICKED_UP"))
        );

        // A retry under the same Idempotency-Key replays the first answer and changed
        // nothing: one audit line, however often it is sent.
        let key = common::new_id("key");
        let path = format!("/v1/deliveries/{id}/transitions");
        let body = common::sample_transition(delivery_core::Transition::Deliver);
        let token = app.token(&principal(Partner));
        for _ in 0..3 {
            app.send(
                poem::http::Method::POST,
                &path,
                Some(&token),
                Some(&body),
                &[("idempotency-key", &key)],
            )
            .await
            .assert_status(StatusCode::OK);
        }
        let delivered = logs
            .audit_lines()
            .into_iter()
            .filter(|line| line["idempotency_key"] == key)
            .count();
        assert_eq!(delivered, 1, "a replay is not audited again");
    })
    .await;
}
