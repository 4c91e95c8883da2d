//! The isolate's copy of the status journal (SPEC §10).
//!
//! Each isolate keeps the journal's changes it has pulled (the newest per key) and the `seq` it
//! pulled up to. Before any answer that depends on a status it checks how old its copy is
//! ([`vouch_core::journal::freshness`]): younger than the refresh interval, it is used as is;
//! younger than the bound, it is used and refreshed in the background (one pull per isolate at a
//! time); older — or never pulled — it is pulled before answering, and if
//! that fails the answer is `503 status_unavailable`: an isolate that cannot see the journal
//! never allows on KV alone. A journal the origin has not seeded yet counts as unreachable; a
//! journal of another epoch (new, or reset) is pulled whole and replaces the copy in one step.
//!
//! With `VOUCH_JOURNAL_SHARE_SECONDS` > 0, isolates of one data centre share their pulls through
//! the Cache API (keyed by cursor; isolates that are up to date share a cursor), so the object
//! sees about one pull per location and interval instead of one per isolate. A shared answer
//! carries when it was read from the object, and the copy's age counts from then: sharing never
//! stretches the fail-closed bound. (The Cache API works on custom domains only; on workers.dev
//! every isolate pulls for itself.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use vouch_core::journal::{self, Change, Entry, Freshness, Pull};
use worker::{Cache, Context, Date, Env, Headers, ResponseBuilder};

use crate::respond::EdgeError;

/// The Durable Object namespace binding of the journal.
pub const BINDING: &str = "VOUCH_JOURNAL";
/// The one journal object's name.
pub const OBJECT_NAME: &str = "status-journal";
/// How often an isolate pulls at most (variable `VOUCH_JOURNAL_REFRESH_MS`).
pub const DEFAULT_REFRESH_MS: u64 = 500;
/// How old an isolate's copy may get before it fails closed (variable `VOUCH_JOURNAL_BOUND_MS`).
pub const DEFAULT_BOUND_MS: u64 = 10_000;
/// How long a refresh may take before it counts as failed.
const PULL_TIMEOUT_MS: u64 = 3_000;
/// A background pull that has not finished after this long no longer blocks another one.
const PULL_GIVE_UP_MS: u64 = 5_000;
/// The most pulls one refresh chains while the journal says `more` (a million entries; the pull
/// timeout ends a refresh long before that in practice).
const MAX_PAGES: usize = 100;

/// The header of a shared pull saying when it was read from the object (Unix ms).
const READ_AT_HEADER: &str = "x-vouch-journal-read-at";

#[derive(Clone, Copy)]
struct Settings {
    refresh_ms: u64,
    bound_ms: u64,
    /// 0: no sharing.
    share_seconds: u64,
}

#[derive(Default)]
struct Copy {
    changes: HashMap<String, Rc<Entry>>,
    /// The org entries among `changes`, by org id: every passport answer looks its org up here,
    /// without building a key.
    orgs: HashMap<String, Rc<Entry>>,
    cursor: i64,
    /// The journal this copy is of (`None`: none yet).
    epoch: Option<i64>,
    /// When the last successful pull started (ms): the copy is at least that fresh.
    refreshed_at: Option<u64>,
    /// When a background pull started, while it runs.
    pulling_since: Option<u64>,
    /// When the last background pull started: the next waits the refresh interval (a shared
    /// answer may be older than that, and must not make every request pull again).
    last_pull_at: u64,
    settings: Option<Settings>,
}

thread_local! {
    static COPY: RefCell<Copy> = RefCell::new(Copy::default());
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

fn settings(env: &Env) -> Settings {
    if let Some(settings) = COPY.with(|c| c.borrow().settings) {
        return settings;
    }
    let read = |name: &str| {
        env.var(name)
            .ok()
            .and_then(|v| v.to_string().trim().parse::<u64>().ok())
    };
    let refresh_ms = read("VOUCH_JOURNAL_REFRESH_MS")
        .filter(|v| *v > 0)
        .unwrap_or(DEFAULT_REFRESH_MS);
    let bound_ms = read("VOUCH_JOURNAL_BOUND_MS")
        .filter(|v| *v > 0)
        .unwrap_or(DEFAULT_BOUND_MS)
        .max(refresh_ms);
    let settings = Settings {
        refresh_ms,
        bound_ms,
        // At most a tenth of the bound, so a shared answer leaves room to refresh.
        share_seconds: read("VOUCH_JOURNAL_SHARE_SECONDS")
            .unwrap_or(0)
            .min(bound_ms / 10_000),
    };
    COPY.with(|c| c.borrow_mut().settings = Some(settings));
    settings
}

/// Forgets the isolate's copy of the journal (its settings stay): the next answer pulls it whole,
/// as in a freshly started isolate.
pub fn forget_copy() {
    COPY.with(|c| {
        let mut c = c.borrow_mut();
        let settings = c.settings;
        *c = Copy {
            settings,
            ..Copy::default()
        };
    });
}

/// The isolate's newest entry about org `org_id`'s freeze, if any.
pub fn org_change(org_id: &str) -> Option<Rc<Entry>> {
    COPY.with(|c| c.borrow().orgs.get(org_id).cloned())
}

/// The newest change the isolate knows for `key` (a KV key), if any.
pub fn change(key: &str) -> Option<Rc<Entry>> {
    COPY.with(|c| c.borrow().changes.get(key).cloned())
}

/// Makes sure the isolate's copy of the journal is inside the bound before a status answer;
/// `host` (the request's) names the shared pulls in the Cache API.
pub async fn ensure_fresh(env: &Env, ctx: &Context, host: &str) -> Result<(), EdgeError> {
    let settings = settings(env);
    let now = now_ms();
    let (age, may_pull) = COPY.with(|c| {
        let c = c.borrow();
        let pulling = c
            .pulling_since
            .is_some_and(|since| now.saturating_sub(since) < PULL_GIVE_UP_MS);
        let due = now.saturating_sub(c.last_pull_at) >= settings.refresh_ms;
        (
            c.refreshed_at.map(|at| now.saturating_sub(at)),
            !pulling && due,
        )
    });
    match journal::freshness(age, settings.refresh_ms, settings.bound_ms) {
        Freshness::Fresh => Ok(()),
        Freshness::Refresh => {
            if may_pull {
                COPY.with(|c| {
                    let mut c = c.borrow_mut();
                    c.pulling_since = Some(now);
                    c.last_pull_at = now;
                });
                let env = env.clone();
                let host = host.to_owned();
                ctx.wait_until(async move {
                    if let Err(error) = refresh_in_time(&env, settings, &host).await {
                        worker::console_warn!("status journal refresh failed: {error}");
                    }
                    // Only this pull's mark: a newer one may have replaced a hung one.
                    COPY.with(|c| {
                        let mut c = c.borrow_mut();
                        if c.pulling_since == Some(now) {
                            c.pulling_since = None;
                        }
                    });
                });
            }
            Ok(())
        }
        Freshness::Stale => refresh_in_time(env, settings, host)
            .await
            .map_err(|detail| {
                worker::console_error!("status journal unreachable: {detail}");
                EdgeError::StatusUnavailable
            }),
    }
}

/// [`refresh`], given up after [`PULL_TIMEOUT_MS`]: a journal that does not answer is one that
/// cannot be reached (the request answers 503 rather than hang).
async fn refresh_in_time(env: &Env, settings: Settings, host: &str) -> Result<(), String> {
    crate::objects::within(PULL_TIMEOUT_MS, refresh(env, settings, host)).await
}

/// Pulls every change after the isolate's cursor and lays them into its copy. A journal that is
/// not seeded is an error (the caller fails closed); a journal of another epoch is pulled whole
/// and replaces the copy in one step.
async fn refresh(env: &Env, settings: Settings, host: &str) -> Result<(), String> {
    let stub = env
        .durable_object(BINDING)
        .and_then(|ns| ns.get_by_name(OBJECT_NAME))
        .map_err(|e| format!("no journal binding: {e}"))?;
    let (mut epoch, cursor) = COPY.with(|c| {
        let c = c.borrow();
        (c.epoch, c.cursor)
    });
    let started_epoch = epoch;
    let mut since = cursor;
    let mut replace = false;
    let mut entries: Vec<Entry> = Vec::new();
    // The copy is as fresh as the oldest read from the object that went into it.
    let mut read_at = u64::MAX;
    for _ in 0..MAX_PAGES {
        let (page, read) = pull(&stub, since, settings, host).await?;
        read_at = read_at.min(read);
        if !page.seeded {
            return Err("the journal is not seeded yet (its origin has not caught it up)".into());
        }
        if epoch != Some(page.epoch) {
            // Another journal (new, or reset): start over from its beginning, into a new copy.
            epoch = Some(page.epoch);
            replace = true;
            entries.clear();
            if since != 0 {
                since = 0;
                continue;
            }
        }
        since = page.entries.last().map_or(since, |e| e.seq).max(since);
        entries.extend(page.entries);
        if !page.more {
            lay_in(
                started_epoch,
                Laid {
                    epoch,
                    replace,
                    entries,
                    head: page.head,
                    floor: page.floor,
                    read_at,
                },
            );
            return Ok(());
        }
    }
    Err("the journal kept saying `more`".into())
}

/// What one refresh read.
struct Laid {
    epoch: Option<i64>,
    replace: bool,
    entries: Vec<Entry>,
    head: i64,
    floor: i64,
    read_at: u64,
}

/// Lays what a refresh read into the copy, in one step. A refresh that started from a copy of
/// another epoch than the copy now has (a concurrent refresh replaced it) is dropped.
fn lay_in(started_epoch: Option<i64>, laid: Laid) {
    COPY.with(|c| {
        let mut c = c.borrow_mut();
        if !laid.replace && c.epoch != started_epoch {
            return;
        }
        if laid.replace {
            c.changes = HashMap::with_capacity(laid.entries.len());
            c.orgs = HashMap::new();
            c.cursor = 0;
            c.epoch = laid.epoch;
        }
        for entry in laid.entries {
            c.cursor = c.cursor.max(entry.seq);
            let key = entry.change.key();
            let newer = c
                .changes
                .get(&key)
                .is_none_or(|known| journal::supersedes(&entry.change, Some(&known.change)));
            if newer {
                let entry = Rc::new(entry);
                if let Change::Org { org_id, .. } = &entry.change {
                    c.orgs.insert(org_id.to_string(), entry.clone());
                }
                c.changes.insert(key, entry);
            }
        }
        let floor = laid.floor;
        c.changes.retain(|_, entry| entry.seq >= floor);
        c.orgs.retain(|_, entry| entry.seq >= floor);
        c.cursor = c.cursor.max(laid.head);
        c.refreshed_at = Some(match (c.refreshed_at, laid.replace) {
            (Some(at), false) => at.max(laid.read_at),
            _ => laid.read_at,
        });
    })
}

/// One page of entries after `cursor`, and when it was read from the object: from this data
/// centre's shared pulls when one is fresh enough, else from the object (then shared).
async fn pull(
    stub: &worker::Stub,
    cursor: i64,
    settings: Settings,
    host: &str,
) -> Result<(Pull, u64), String> {
    let key = format!("https://{host}/__vouch/journal?since={cursor}");
    let share_ms = settings.share_seconds * 1_000;
    if share_ms > 0 {
        if let Ok(Some(mut shared)) = Cache::default().get(key.as_str(), false).await {
            let read_at = shared
                .headers()
                .get(READ_AT_HEADER)
                .ok()
                .flatten()
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(read_at) = read_at.filter(|at| now_ms().saturating_sub(*at) < share_ms) {
                if let Ok(pull) = shared.json::<Pull>().await {
                    return Ok((pull, read_at));
                }
            }
        }
    }
    let read_at = now_ms();
    let mut response = crate::objects::call(
        stub,
        worker::Method::Get,
        &format!("/entries?since={cursor}"),
        None,
    )
    .await
    .map_err(|e| e.to_string())?;
    if response.status_code() != 200 {
        return Err(format!("the journal answered {}", response.status_code()));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    let pull: Pull = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if share_ms > 0 {
        let headers = Headers::new();
        let _ = headers.set(
            "cache-control",
            &format!("public, s-maxage={}", settings.share_seconds),
        );
        let _ = headers.set(READ_AT_HEADER, &read_at.to_string());
        let shared = ResponseBuilder::new()
            .with_headers(headers)
            .fixed(text.into_bytes());
        if let Err(error) = Cache::default().put(key.as_str(), shared).await {
            worker::console_warn!("could not share a journal pull: {error}");
        }
    }
    Ok((pull, read_at))
}
