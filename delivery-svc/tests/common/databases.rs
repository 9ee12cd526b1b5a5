//! A fresh database per test: a SQLite file in a temporary directory, and a PostgreSQL
//! schema of the test's own when `TEST_POSTGRES_URL` is set. Shared by the integration
//! tests (through `common`) and by the crate's own unit tests (through `#[path]`).
//!
//! On PostgreSQL each test gets a schema (`<label>_<uuid>`, made with `CREATE SCHEMA` and
//! selected through the connection's `search_path`), dropped when the test ends: tests run
//! in parallel and can be rerun. Without `TEST_POSTGRES_URL` the test prints
//! `skipping PostgreSQL: TEST_POSTGRES_URL not set`; with `REQUIRE_SERVICES` set (CI), that
//! fails the test instead.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// Runs `test` with the URL of a fresh SQLite database, then of a fresh PostgreSQL schema.
/// `label` names the file and the schema.
pub async fn on_every_database(label: &str, test: impl AsyncFn(String)) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(format!("{label}.db")).display()
    );
    println!("on SQLite");
    test(url).await;
    on_postgres(label, test).await;
}

/// Runs `test` with the URL of a fresh PostgreSQL schema, or skips it (see the module docs).
pub async fn on_postgres(label: &str, test: impl AsyncFn(String)) {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("REQUIRE_SERVICES").is_none(),
            "REQUIRE_SERVICES is set but TEST_POSTGRES_URL is not"
        );
        println!("skipping PostgreSQL: TEST_POSTGRES_URL not set");
        return;
    };
    let schema = PostgresSchema::create(&admin_url, label).await;
    println!("on PostgreSQL, schema {}", schema.name);
    test(schema.url.clone()).await;
    schema.drop().await;
}

/// A schema of one test's own on the PostgreSQL server.
struct PostgresSchema {
    admin: DatabaseConnection,
    name: String,
    /// `TEST_POSTGRES_URL` with this schema as the search path.
    url: String,
}

impl PostgresSchema {
    async fn create(admin_url: &str, label: &str) -> PostgresSchema {
        let name = format!("{label}_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("a test schema");
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
        PostgresSchema { admin, name, url }
    }

    async fn drop(self) {
        self.admin
            .execute_unprepared(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop the test schema");
        self.admin
            .close()
            .await
            .expect("close the admin connection");
    }
}
