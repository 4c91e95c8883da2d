//! The origin's HTTP-level suite, run against SQLite always and against Postgres when
//! `VOUCH_TEST_POSTGRES_URL` is set (each test in a fresh database, dropped afterwards).
//! With `VOUCH_REQUIRE_POSTGRES=1` (CI) a missing or unreachable Postgres fails every Postgres
//! test instead of skipping it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent_events;
mod agents;
mod audit;
mod brake;
mod console;
mod delegations;
mod harness;
mod input;
mod isolation;
mod lifecycle;
mod migrations;
mod oap;
mod ops;
mod outbox;
mod partners;
mod rate_limits;
mod receipts;
#[path = "../support/receiver.rs"]
mod receiver;
mod status_lists;
mod tokens;
mod webhooks;

/// Generates one test per case and backend: `sqlite::case` and `postgres::case`.
macro_rules! on_both_databases {
    ($($case:ident => $path:path $([$webhooks:expr])?),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let app = crate::harness::TestApp::start_with(crate::harness::Backend::Sqlite, None $(.or(Some($webhooks)))?)
                        .await
                        .expect("sqlite always runs");
                    $path(&app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(app) = crate::harness::TestApp::start_with(crate::harness::Backend::Postgres, None $(.or(Some($webhooks)))?).await else {
                        eprintln!("skipped: set VOUCH_TEST_POSTGRES_URL to run the Postgres suite");
                        return;
                    };
                    $path(&app).await;
                }
            )*
        }
    };
}

on_both_databases! {
    lifecycle_table => crate::lifecycle::every_pair,
    revoked_key_stops_working => crate::lifecycle::revoked_key_stops_working,
    status_response_and_reason => crate::lifecycle::status_response_and_reason,
    tenant_isolation_matrix => crate::isolation::matrix,
    viewer_cannot_write => crate::isolation::viewer_cannot_write,
    token_rules => crate::isolation::token_rules,
    token_revocation => crate::isolation::token_revocation,
    authentication => crate::isolation::authentication,
    console_sessions => crate::console::sessions,
    console_csrf_and_viewers => crate::console::csrf_and_viewers,
    console_pages => crate::console::pages,
    console_partners => crate::console::partners,
    register_and_read => crate::agents::register_and_read,
    receipts_listed_newest_first_once_each => crate::receipts::listed_newest_first_once_each,
    immutable_fields => crate::agents::immutable_fields,
    if_match_conflicts => crate::agents::if_match_conflicts,
    list_filters => crate::agents::list_filters,
    pagination_under_concurrent_inserts => crate::agents::pagination_under_concurrent_inserts,
    key_rotation_and_heartbeat => crate::agents::key_rotation_and_heartbeat,
    concurrent_status_changes => crate::agents::concurrent_status_changes,
    bad_input_orgs => crate::input::orgs,
    bad_input_agents => crate::input::agents,
    bad_input_patch_and_status => crate::input::patch_and_status,
    bad_input_queries => crate::input::queries,
    audit_chain_verifies => crate::audit::verifies,
    audit_edit_detected => crate::audit::edit_detected,
    audit_delete_detected => crate::audit::delete_detected,
    audit_truncation_detected => crate::audit::truncation_detected,
    audit_tampering_against_published => crate::audit::tampering_is_caught_against_the_published_checkpoint,
    audit_proofs_verify_independently => crate::audit::proofs_verify_independently,
    audit_concurrent_registrations_seal_once => crate::audit::concurrent_registrations_seal_once,
    outbox_row_per_change => crate::outbox::row_per_change,
    forced_failure_rolls_back => crate::outbox::forced_failure_rolls_back,
    kv_outbox_leases => crate::outbox::kv_outbox_leases,
    journal_outbox => crate::outbox::journal_outbox,
    wait_needs_a_journal => crate::outbox::wait_needs_a_journal,
    operations => crate::ops::operations,
    client_credentials => crate::tokens::client_credentials,
    delegation_grants => crate::delegations::grants,
    delegation_listing => crate::delegations::listing,
    whoami => crate::delegations::whoami,
    signing_keys_rotate => crate::tokens::signing_keys_rotate,
    brake_tokens_revoked => crate::brake::tokens_revoked,
    brake_keys_withdrawn => crate::brake::keys_withdrawn,
    brake_org_frozen => crate::brake::org_frozen,
    generated_platform_token => crate::ops::generated_platform_token,
    configured_platform_token_without_prefix => crate::ops::configured_platform_token_without_prefix,
    webhook_event_types => crate::webhooks::every_event_type_once_per_change [crate::webhooks::fast()],
    webhook_retries => crate::webhooks::retries_keep_the_webhook_id [crate::webhooks::fast()],
    webhook_disabled_after_failures => crate::webhooks::failing_subscription_is_disabled [crate::webhooks::impatient()],
    webhook_secret_rotation => crate::webhooks::secret_rotation_signs_with_both [crate::webhooks::fast()],
    webhook_private_addresses => crate::webhooks::private_addresses_are_refused,
    webhook_isolation_and_roles => crate::webhooks::isolation_and_roles,
    event_stream_resume => crate::webhooks::event_stream_resumes_without_gaps,
    webhook_patch_rotation_race => crate::webhooks::patch_and_rotation_do_not_race [crate::webhooks::fast()],
    webhook_lost_lease => crate::webhooks::a_lost_lease_settles_nothing,
    webhook_stale_settle_same_owner => crate::webhooks::a_stale_settle_by_the_same_owner_changes_nothing,
    webhook_concurrent_claims => crate::webhooks::concurrent_claims_lease_once,
    webhook_fair_sending => crate::webhooks::a_hanging_endpoint_starves_nobody [crate::webhooks::patient()],
    webhook_retention => crate::webhooks::old_deliveries_are_pruned,
    webhook_urls_redacted => crate::webhooks::urls_in_events_are_redacted,
    webhook_redelivery_and_limits => crate::webhooks::redelivery_and_limits,
    webhook_deletes_race_writes => crate::webhooks::deletes_do_not_fail_other_writes,
    webhook_deletes_race_cascades => crate::webhooks::deletes_do_not_deadlock_with_cascades,
    webhook_reenable_races_settle => crate::webhooks::reenabling_does_not_deadlock_with_settling,
    event_stream_credentials => crate::webhooks::event_streams_end_when_credentials_die,
    event_stream_opening_and_limits => crate::webhooks::event_stream_opening_and_limits,
    event_streams_per_org => crate::webhooks::event_streams_are_limited_per_org,
    rate_limit_admin_per_credential => crate::rate_limits::admin_api_per_credential,
    rate_limit_admin_per_address => crate::rate_limits::admin_api_per_address,
    rate_limit_token_per_credential => crate::rate_limits::token_endpoint_per_credential,
    rate_limit_token_per_address => crate::rate_limits::token_endpoint_per_address,
    oap_import_and_export => crate::oap::import_and_export,
    oap_bad_imports => crate::oap::bad_imports,
    oap_round_trip => crate::oap::round_trip_decides_the_same,
    rate_limit_console_per_address => crate::rate_limits::console_per_address,
    partners_crud_and_rotation => crate::partners::crud_and_rotation,
    partners_authorization => crate::partners::authorization,
    partners_token_audience => crate::partners::token_audience,
    status_list_places_claims_and_lists => crate::status_lists::places_claims_and_lists,
    status_list_builders_take_turns => crate::status_lists::builders_take_turns,
    agent_events_recorded => crate::agent_events::recorded_delivered_and_streamed [crate::webhooks::fast()],
    agent_events_credentials => crate::agent_events::credentials,
    agent_events_bad_input => crate::agent_events::bad_input,
    status_list_places_unique => crate::status_lists::places_are_unique_under_concurrent_registrations,
}

/// `/readyz` on a database that refuses connections: `503` with a fixed sentence, never the
/// database's own error text (which names the database, the server, the user). Postgres only:
/// a SQLite file cannot be made to refuse its open connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_readiness_hides_database_errors() {
    let Some(app) =
        crate::harness::TestApp::start_with(crate::harness::Backend::Postgres, None).await
    else {
        eprintln!("skipped: set VOUCH_TEST_POSTGRES_URL to run the Postgres suite");
        return;
    };
    crate::ops::readiness_hides_database_errors(&app).await;
}
