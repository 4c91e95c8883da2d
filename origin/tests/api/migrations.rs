//! Migrations over a database that already holds data: the agents registered before status
//! lists existed get their places in the migration itself (SPEC §16).

use std::borrow::Cow;

/// The agents an older origin registered: ids out of insertion order, so the test sees that
/// places follow the ids (UUIDv7: registration order), not the rows.
const AGENTS: [&str; 3] = [
    "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f72",
    "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
    "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f71",
];

fn seed_sql() -> String {
    let mut sql = String::from(
        "INSERT INTO orgs (org_id, name, slug, created_at) \
         VALUES ('org_0192f2a4c3b87d9e8f1a2b3c4d5e6f00', 'old', 'old', 1);",
    );
    for (i, agent) in AGENTS.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO agents (agent_id, org_id, name, status, version, document, api_key_hash, \
             created_at, updated_at) VALUES ('{agent}', 'org_0192f2a4c3b87d9e8f1a2b3c4d5e6f00', \
             'bot {i}', 'active', 1, '{{}}', 'hash-{i}', 1, 1);"
        ));
    }
    sql
}

/// Every migration before status lists.
fn before_status_lists(all: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    let migrations: Vec<_> = all
        .migrations
        .iter()
        .filter(|m| m.version < 17)
        .cloned()
        .collect();
    assert_eq!(migrations.len(), 16);
    sqlx::migrate::Migrator {
        migrations: Cow::Owned(migrations),
        ..all
    }
}

const PLACES: &str = "SELECT agent_id, status_index FROM agents ORDER BY agent_id";

fn expected_places() -> Vec<(String, i64)> {
    let mut ids: Vec<&str> = AGENTS.to_vec();
    ids.sort();
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| (id.to_owned(), i as i64))
        .collect()
}

#[tokio::test]
async fn sqlite_gives_existing_agents_their_places() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    before_status_lists(sqlx::migrate!("./migrations/sqlite"))
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(&seed_sql()).execute(&pool).await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .unwrap();
    let places: Vec<(String, i64)> = sqlx::query_as(PLACES).fetch_all(&pool).await.unwrap();
    assert_eq!(places, expected_places());
    let lists: Vec<(i64,)> = sqlx::query_as("SELECT list_id FROM status_lists")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(lists, [(0,)]);
    let changes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM status_list_changes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(changes, 1, "list 0 is built at the first pass");
    pool.close().await;
}

#[tokio::test]
async fn postgres_gives_existing_agents_their_places() {
    let Some(admin_url) = crate::harness::postgres_url() else {
        eprintln!("skipped: set VOUCH_TEST_POSTGRES_URL to run the Postgres suite");
        return;
    };
    let name = format!("vouch_migrate_{}", uuid::Uuid::now_v7().simple());
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    before_status_lists(sqlx::migrate!("./migrations/postgres"))
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(&seed_sql()).execute(&pool).await.unwrap();
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .unwrap();
    let places: Vec<(String, i64)> = sqlx::query_as(PLACES).fetch_all(&pool).await.unwrap();
    assert_eq!(places, expected_places());
    // The next registration takes the next number.
    let next: i64 = sqlx::query_scalar("SELECT nextval('agent_status_index')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(next, AGENTS.len() as i64);
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}
