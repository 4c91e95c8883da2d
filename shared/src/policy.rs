//! Policy decisions (SPEC §11): may this agent use this capability, here, for this much?
//!
//! [`decide`] is one pure function shared by the origin and the edge worker. It reads the
//! passport's edge view and a [`DecisionRequest`] and answers an [`Evaluation`]: `allow` and the
//! reasons. A denial lists **every** failed check (in the order the checks run: status,
//! capability, assurance, context, region, limits), never only the first; an allow carries
//! exactly one reason, `oap.allowed`.
//!
//! The limits vocabulary, with examples and the unit of every amount, is documented in
//! `docs/policy.md`. In short:
//!
//! * **Flat keys** (the seed passport), amounts in **major** units of the currency in the key:
//!   `<action>_<ccy>_max_per_tx`, `<action>_<ccy>_daily_cap`, `max_<action>_rows`, and the
//!   global `allow_pii`. `<action>` is the last segment of a capability id (`refund` for
//!   `payments.refund`), `<ccy>` a lower-case ISO 4217 code.
//! * **Capability params**: `max_amount` (major units of the `currency` param), `currency`,
//!   `max_rows`.
//! * **OAP 1.0 layout**: `limits["<capability id>"]` is an object with `currency_limits.<CCY>`
//!   `.max_per_tx` / `.daily_cap` in integer **minor** units (OAP), `max_rows`, `allow_pii`,
//!   `allowed_collections`, `reason_codes`, `min_assurance`.
//!
//! Amounts in a request's context are JSON numbers in **major** units (`250` is 250 USD); they
//! are converted once to integer minor units ([`to_minor_units`]) and every comparison is exact.
//!
//! **Unknown keys never allow silently.** A limit key the vocabulary does not know makes every
//! decision it *applies to* deny with [`codes::LIMIT_UNKNOWN`], naming the key:
//!
//! * any unknown key inside `limits["<requested capability>"]` (at any depth) or inside the
//!   requested capability's `params` applies to that capability;
//! * any other unknown top-level key (a flat key we cannot read, or an object keyed by a
//!   capability the passport does not hold) applies to every held capability whose action it
//!   names (its `.`/`_`-separated words contain the action's words, e.g. `refund_usd_weekly_cap`
//!   and `finance.payment.refund` name `refund`); a key that names no action of any held
//!   capability applies to **every** capability.
//!
//! A known key whose value cannot be read (a negative cap, `"allow_pii": "no"`) denies every
//! decision it applies to with `oap.policy_error` (OAP's normative "policy evaluation error").
//!
//! **Daily caps are stateful.** This module is pure: it denies an amount that is above a daily
//! cap on its own, and, when the caller passes what the agent already spent today
//! ([`decide_with_spent`]), an amount that would take `spent + amount` above the cap. Recording
//! spending atomically (`"commit": true`) is the caller's job; [`Evaluation::spend`] gives it the
//! amount in minor units and every daily cap it counts against.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::edge_view::EdgePassport;
use crate::passport::{AssuranceLevel, Capability, Status};
use crate::validate;

/// The reason codes a decision can carry: OAP 1.0's normative codes and our own `limit_unknown`.
pub mod words;

pub mod codes {
    /// Every check passed.
    pub const ALLOWED: &str = "oap.allowed";
    /// The passport does not hold the capability.
    pub const UNKNOWN_CAPABILITY: &str = "oap.unknown_capability";
    /// An amount, daily cap, row count, PII flag, collection or reason code is outside a limit.
    pub const LIMIT_EXCEEDED: &str = "oap.limit_exceeded";
    /// The capability has amount limits, none of them in the request's currency.
    pub const CURRENCY_UNSUPPORTED: &str = "oap.currency_unsupported";
    /// The request's region is not among the passport's regions (or it has none).
    pub const REGION_BLOCKED: &str = "oap.region_blocked";
    /// The passport's assurance level is below a required minimum.
    pub const ASSURANCE_INSUFFICIENT: &str = "oap.assurance_insufficient";
    /// The passport is not `active` (draft, suspended or revoked).
    pub const PASSPORT_SUSPENDED: &str = "oap.passport_suspended";
    /// A context value is malformed, or one a limit needs is missing.
    pub const INVALID_CONTEXT: &str = "oap.invalid_context";
    /// A known limit key has a value that cannot be read.
    pub const POLICY_ERROR: &str = "oap.policy_error";
    /// An idempotency key was used before for a different request.
    pub const IDEMPOTENCY_CONFLICT: &str = "oap.idempotency_conflict";
    /// A limit key the vocabulary does not know applies to the capability.
    pub const LIMIT_UNKNOWN: &str = "limit_unknown";
    /// No passport exists for the agent.
    pub const AGENT_NOT_FOUND: &str = "agent_not_found";
}

/// What is asked: may the agent use `capability` in this `context`?
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionRequest {
    /// A capability id, e.g. `payments.refund`.
    #[cfg_attr(feature = "openapi", schema(example = "payments.refund"))]
    pub capability: String,
    #[serde(default)]
    pub context: Context,
    /// A minimum assurance level the relying party requires for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_assurance: Option<AssuranceLevel>,
}

/// The facts of the request that limits are checked against. Every field is optional; an
/// unknown key is refused ([`Context::from_json`] makes it an `oap.invalid_context` reason).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Context {
    /// A JSON number in **major** units of `currency` (`250` is 250 USD), at most as many
    /// fraction digits as the currency has (see [`minor_unit_digits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, example = 250))]
    pub amount: Option<Number>,
    /// ISO 4217, upper case (`USD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "USD"))]
    pub currency: Option<String>,
    /// ISO 3166-1 alpha-2 or ISO 3166-2 (`US-CA`) where the action takes effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "US-CA"))]
    pub region: Option<String>,
    /// A non-negative integer: how many rows an export moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub rows: Option<Number>,
    /// Whether personal data is involved; absent means `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<bool>,
    /// The data collection an export reads (checked against `allowed_collections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Why the action is taken (checked against `reason_codes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The amount already in integer minor units of `currency` (a policy pack's request, in
    /// OAP units); never read from or written to JSON. When set, `amount` is ignored.
    #[serde(skip)]
    pub(crate) amount_minor: Option<u64>,
}

impl Context {
    /// The context as one canonical JSON value: the amount in minor units when it and the
    /// currency can be read (`250` and `250.00` USD are both `25000`), every other field as sent.
    pub fn canonical(&self) -> Value {
        let amount = match (&self.amount, &self.currency) {
            (Some(amount), Some(currency)) => to_minor_units(amount, currency)
                .map(json_minor)
                .unwrap_or_else(|_| Value::Number(amount.clone())),
            (Some(amount), None) => Value::Number(amount.clone()),
            (None, _) => Value::Null,
        };
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut value {
            fields.insert("amount".into(), amount);
        }
        value
    }

    /// Reads a request's `context` (`null` is an empty context). A malformed one (an unknown
    /// key, a value of the wrong JSON type) is the `oap.invalid_context` reason to deny with,
    /// naming the field; see [`decide_unreadable_context`].
    pub fn from_json(value: Value) -> Result<Context, Reason> {
        if value.is_null() {
            return Ok(Context::default());
        }
        if !value.is_object() {
            return Err(
                Reason::new(codes::INVALID_CONTEXT, "`context` must be a JSON object")
                    .field("context"),
            );
        }
        crate::passport::deserialize_field(value, "context").map_err(|e| Reason {
            code: codes::INVALID_CONTEXT.to_owned(),
            message: e.to_string(),
            limit: None,
            field: e.field_name().map(str::to_owned),
        })
    }
}

/// What the caller has already committed today (UTC day) for this agent, in integer **minor**
/// units, keyed by a daily cap's passport path (`{"limits.refund_usd_daily_cap": 95000}`, what
/// the edge's ledger keeps per cap) or by ISO 4217 code (`{"USD": 95000}` is 950.00 USD against
/// every cap in that currency). A cap's own path wins over its currency.
pub type SpentToday = BTreeMap<String, u64>;

/// The answer: `allow` and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Evaluation {
    pub allow: bool,
    /// `[oap.allowed]` when allowed; otherwise one reason per failed check.
    pub reasons: Vec<Reason>,
    /// The request's amount in minor units and the daily caps it counts against, when the
    /// capability is held and the context carries a valid amount and currency. A caller that
    /// commits spending records `amount_minor` against each cap, only when `allow` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<Spend>,
}

impl Evaluation {
    /// Whether some reason has this code.
    pub fn has(&self, code: &str) -> bool {
        self.reasons.iter().any(|r| r.code == code)
    }

    /// The reason codes, in order.
    pub fn codes(&self) -> Vec<&str> {
        self.reasons.iter().map(|r| r.code.as_str()).collect()
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reason {
    /// An OAP code (`oap.limit_exceeded`) or our own (`limit_unknown`); see [`codes`].
    #[cfg_attr(feature = "openapi", schema(example = "oap.limit_exceeded"))]
    pub code: String,
    /// A human sentence, with amounts written in major units and their currency.
    pub message: String,
    /// The passport path of the limit that failed: `limits.refund_usd_max_per_tx`,
    /// `limits.payments.refund.currency_limits.USD.max_per_tx`, `capabilities[0].params.max_amount`,
    /// `regions`, `assurance_level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The request field at fault: `context.amount`, `context.region`, `min_assurance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Reason {
    pub fn new(code: &str, message: impl Into<String>) -> Reason {
        Reason {
            code: code.to_owned(),
            message: message.into(),
            limit: None,
            field: None,
        }
    }

    pub(crate) fn limit(mut self, limit: impl fmt::Display) -> Reason {
        self.limit = Some(limit.to_string());
        self
    }

    pub(crate) fn field(mut self, field: &str) -> Reason {
        self.field = Some(field.to_owned());
        self
    }
}

/// The request's amount, ready to be committed against daily caps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Spend {
    /// ISO 4217, upper case.
    pub currency: String,
    /// The amount in integer minor units (cents for USD).
    pub amount_minor: u64,
    /// Every daily cap in that currency that applies, tightest first.
    pub daily_caps: Vec<DailyCap>,
}

/// A daily cap the amount counts against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyCap {
    /// The passport path of the cap, e.g. `limits.refund_usd_daily_cap`.
    pub limit: String,
    /// The cap in integer minor units.
    pub cap_minor: u64,
}

fn json_minor(minor: u64) -> Value {
    serde_json::json!({ "minor": minor })
}

/// The `oap.limit_exceeded` reason when `amount` (minor units) on top of `already` spent today
/// goes above the daily `cap` at passport path `limit`; `None` when it fits.
fn over_daily_cap(ccy: Ccy, amount: u64, already: u64, cap: u64, limit: &str) -> Option<Reason> {
    let over = already.checked_add(amount).is_none_or(|total| total > cap);
    if !over {
        return None;
    }
    let message = if amount > cap || already == 0 {
        format!(
            "{} exceeds the daily cap of {} (`{limit}`)",
            ccy.money(amount),
            ccy.money(cap)
        )
    } else {
        format!(
            "{} on top of {} already spent today exceeds the daily cap of {} (`{limit}`)",
            ccy.money(amount),
            ccy.money(already),
            ccy.money(cap)
        )
    };
    Some(
        Reason::new(codes::LIMIT_EXCEEDED, message)
            .limit(limit)
            .field("context.amount"),
    )
}

impl Spend {
    /// The reasons this spend cannot be recorded when `spent(cap)` (minor units) was already
    /// spent today against each of its caps (by the cap's passport path): one per cap it would go
    /// above. Empty: it fits under every one.
    pub fn over_caps(&self, spent: &dyn Fn(&str) -> u64) -> Vec<Reason> {
        let Some(ccy) = Ccy::parse_upper(&self.currency) else {
            return vec![Reason::new(
                codes::POLICY_ERROR,
                format!("`{}` is not a currency code", self.currency),
            )];
        };
        self.daily_caps
            .iter()
            .filter_map(|c| {
                over_daily_cap(
                    ccy,
                    self.amount_minor,
                    spent(&c.limit),
                    c.cap_minor,
                    &c.limit,
                )
            })
            .collect()
    }
}

/// Decides `request` for `passport` with nothing spent today (see [`decide_with_spent`]).
pub fn decide(passport: &EdgePassport, request: &DecisionRequest) -> Evaluation {
    decide_with_spent(passport, request, &SpentToday::new())
}

/// Decides `request` for `passport`, counting `spent` (minor units per currency, already
/// committed today for this agent and capability) against the daily caps: a request is denied
/// when `spent + amount > cap`.
pub fn decide_with_spent(
    passport: &EdgePassport,
    request: &DecisionRequest,
    spent: &SpentToday,
) -> Evaluation {
    let (found, spend) = run_checks(passport, request, spent, &[]);
    finish(found.into_reasons(), spend, &request.capability)
}

/// Every check of [`decide_with_spent`], each reason tagged with the [`Check`] it comes from, in
/// the native order. `pack_keys` are the pack-only limit keys ([`PACK_ONLY_KEYS`]) the calling
/// policy pack enforces itself; every other pack-only key that restricts the capability denies.
pub(crate) fn run_checks(
    passport: &EdgePassport,
    request: &DecisionRequest,
    spent: &SpentToday,
    pack_keys: &[&str],
) -> (Found, Option<Spend>) {
    let mut out = Found::default();
    let held = check_identity(
        passport,
        &request.capability,
        request.min_assurance,
        &mut out,
    );
    let ctx = read_context(&request.context, &mut out);
    check_region(passport, &ctx, &mut out);
    let mut spend = None;
    if let Some((index, capability)) = held {
        let limits = collect_limits(passport, index, capability, pack_keys);
        spend = check_limits(&limits, passport, capability, &ctx, spent, &mut out);
    }
    (out, spend)
}

/// The decision when the request's `context` could not be read at all ([`Context::from_json`]
/// failed with `reason`): the checks that need no context (status, capability held) still run,
/// so the denial lists them too.
pub fn decide_unreadable_context(
    passport: &EdgePassport,
    capability: &str,
    reason: Reason,
) -> Evaluation {
    let mut out = Found::default();
    check_identity(passport, capability, None, &mut out);
    out.push(Check::Context, reason);
    finish(out.into_reasons(), None, capability)
}

/// Which check of the decision vocabulary (SPEC §11) a reason comes from. Native decisions run
/// them in a fixed order; a policy pack ([`crate::packs`]) lists them in its own order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The passport is `active` (`oap.passport_suspended`).
    PassportActive,
    /// The passport holds the capability (`oap.unknown_capability`).
    Capability,
    /// The assurance level meets every minimum (`oap.assurance_insufficient`).
    Assurance,
    /// Every context value is well formed and present where required (`oap.invalid_context`).
    Context,
    /// Every limit key that applies is known and readable (`limit_unknown`, `oap.policy_error`).
    LimitsReadable,
    /// The region is among the passport's (`oap.region_blocked`).
    Region,
    /// The currency has limits (`oap.currency_unsupported`).
    Currency,
    /// The amount is within every per-transaction limit (`oap.limit_exceeded`).
    AmountPerTx,
    /// The amount fits under every daily cap, with what was spent today (`oap.limit_exceeded`).
    DailyCap,
    /// The row count is within every row limit (`oap.limit_exceeded`).
    Rows,
    /// Personal data only where allowed (`oap.limit_exceeded`).
    Pii,
    /// The collection is among the allowed ones (`oap.limit_exceeded`).
    Collection,
    /// The reason code is among the allowed ones (`oap.limit_exceeded`).
    ReasonCode,
    /// No `approval_required: true` applies (`oap.limit_exceeded`).
    Approval,
    /// No pack-only limit applies that the decision does not enforce (`oap.invalid_context`).
    PackOnly,
}

impl Check {
    /// The code this check denies with when it fails on a limit (a missing or malformed value is
    /// `oap.invalid_context` whatever the check).
    pub fn code(self) -> &'static str {
        match self {
            Check::PassportActive => codes::PASSPORT_SUSPENDED,
            Check::Capability => codes::UNKNOWN_CAPABILITY,
            Check::Assurance => codes::ASSURANCE_INSUFFICIENT,
            Check::Context | Check::PackOnly => codes::INVALID_CONTEXT,
            Check::LimitsReadable => codes::LIMIT_UNKNOWN,
            Check::Region => codes::REGION_BLOCKED,
            Check::Currency => codes::CURRENCY_UNSUPPORTED,
            Check::AmountPerTx
            | Check::DailyCap
            | Check::Rows
            | Check::Pii
            | Check::Collection
            | Check::ReasonCode
            | Check::Approval => codes::LIMIT_EXCEEDED,
        }
    }
}

/// The reasons found so far, each with its [`Check`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Found(pub(crate) Vec<(Check, Reason)>);

impl Found {
    pub(crate) fn push(&mut self, check: Check, reason: Reason) {
        self.0.push((check, reason));
    }

    pub(crate) fn extend(&mut self, check: Check, reasons: impl IntoIterator<Item = Reason>) {
        self.0.extend(reasons.into_iter().map(|r| (check, r)));
    }

    pub(crate) fn into_reasons(self) -> Vec<Reason> {
        self.0.into_iter().map(|(_, r)| r).collect()
    }
}

pub(crate) fn finish(reasons: Vec<Reason>, spend: Option<Spend>, capability: &str) -> Evaluation {
    if reasons.is_empty() {
        Evaluation {
            allow: true,
            reasons: vec![Reason::new(
                codes::ALLOWED,
                format!("`{capability}` is allowed: every check passed"),
            )],
            spend,
        }
    } else {
        Evaluation {
            allow: false,
            reasons,
            spend,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Status, capability, assurance

fn check_identity<'p>(
    passport: &'p EdgePassport,
    capability: &str,
    min_assurance: Option<AssuranceLevel>,
    out: &mut Found,
) -> Option<(usize, &'p Capability)> {
    if passport.status != Status::Active {
        let why = passport
            .status_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        out.push(
            Check::PassportActive,
            Reason::new(
                codes::PASSPORT_SUSPENDED,
                format!(
                    "the passport is {}{why}; only an active passport is allowed anything",
                    passport.status
                ),
            ),
        );
    }
    let held = passport
        .capabilities
        .iter()
        .enumerate()
        .find(|(_, c)| c.id.as_str() == capability);
    if held.is_none() {
        out.push(
            Check::Capability,
            Reason::new(
                codes::UNKNOWN_CAPABILITY,
                format!("the passport does not hold the capability `{capability}`"),
            )
            .limit("capabilities"),
        );
    }
    if let Some(min) = min_assurance {
        if passport.assurance_level < min {
            out.push(
                Check::Assurance,
                Reason::new(
                    codes::ASSURANCE_INSUFFICIENT,
                    format!(
                        "the request requires assurance {min:?} or higher; the passport has {:?}",
                        passport.assurance_level
                    ),
                )
                .limit("assurance_level")
                .field("min_assurance"),
            );
        }
    }
    held
}

// ---------------------------------------------------------------------------------------------
// Context

/// The request's amount after reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Amount {
    Absent,
    /// Present but malformed (already reported).
    Bad,
    /// Present and non-negative; in minor units when the currency is known and valid.
    Present(Option<u64>),
}

/// The context with every value checked; malformed values are reported once, here.
struct Ctx<'a> {
    amount: Amount,
    currency: Option<Ccy>,
    currency_given: bool,
    region: Option<&'a str>,
    region_given: bool,
    rows: Option<u64>,
    rows_given: bool,
    pii: bool,
    collection: Option<&'a str>,
    reason_code: Option<&'a str>,
}

fn read_context<'a>(c: &'a Context, out: &mut Found) -> Ctx<'a> {
    let invalid = |field: &str, message: String| {
        Reason::new(codes::INVALID_CONTEXT, message).field(&format!("context.{field}"))
    };
    let currency = match c.currency.as_deref() {
        None => None,
        Some(s) => {
            let parsed = Ccy::parse_upper(s);
            if parsed.is_none() {
                out.push(
                    Check::Context,
                    invalid(
                        "currency",
                        format!(
                            "`{s}` is not an ISO 4217 currency code (three upper-case letters)"
                        ),
                    ),
                );
            }
            parsed
        }
    };
    let amount = match (&c.amount, c.amount_minor) {
        (_, Some(minor)) => Amount::Present(currency.map(|_| minor)),
        (None, None) => Amount::Absent,
        (Some(n), None) => {
            let result = match currency {
                Some(ccy) => to_minor_units(n, ccy.as_str()).map(Some),
                // Without a (valid) currency only the sign can be checked.
                None => check_sign(n).map(|()| None),
            };
            match result {
                Ok(minor) => Amount::Present(minor),
                Err(e) => {
                    let ccy = currency.map(|c| format!(" {c}")).unwrap_or_default();
                    out.push(
                        Check::Context,
                        invalid("amount", format!("amount {n}{ccy}: {e}")),
                    );
                    Amount::Bad
                }
            }
        }
    };
    let region = match c.region.as_deref() {
        Some(r) if r != "*" && validate::is_region(r) => Some(r),
        Some(r) => {
            out.push(
                Check::Context,
                invalid(
                    "region",
                    format!("`{r}` is not a region (ISO 3166-1 alpha-2 or ISO 3166-2, e.g. US-CA)"),
                ),
            );
            None
        }
        None => None,
    };
    let rows = match &c.rows {
        None => None,
        Some(n) => {
            let rows = n.as_u64();
            if rows.is_none() {
                out.push(
                    Check::Context,
                    invalid(
                        "rows",
                        format!("rows must be a non-negative integer, not {n}"),
                    ),
                );
            }
            rows
        }
    };
    Ctx {
        amount,
        currency,
        currency_given: c.currency.is_some(),
        region,
        region_given: c.region.is_some(),
        rows,
        rows_given: c.rows.is_some(),
        pii: c.pii.unwrap_or(false),
        collection: c.collection.as_deref(),
        reason_code: c.reason_code.as_deref(),
    }
}

// ---------------------------------------------------------------------------------------------
// Regions

fn check_region(passport: &EdgePassport, ctx: &Ctx<'_>, out: &mut Found) {
    let regions = &passport.regions;
    if regions.is_empty() {
        out.push(
            Check::Region,
            Reason::new(
                codes::REGION_BLOCKED,
                "the passport lists no regions, so it may operate nowhere",
            )
            .limit("regions"),
        );
        return;
    }
    if regions.iter().any(|r| r.as_str() == "*") {
        return;
    }
    let listed = || {
        regions
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match ctx.region {
        Some(region) => {
            if !regions.iter().any(|r| region_covers(r.as_str(), region)) {
                out.push(
                    Check::Region,
                    Reason::new(
                        codes::REGION_BLOCKED,
                        format!(
                            "region {region} is not among the passport's regions ({})",
                            listed()
                        ),
                    )
                    .limit("regions")
                    .field("context.region"),
                );
            }
        }
        // A malformed region was reported already.
        None if ctx.region_given => {}
        None => out.push(
            Check::Region,
            Reason::new(
                codes::INVALID_CONTEXT,
                format!(
                    "region is required: the passport may operate only in {}",
                    listed()
                ),
            )
            .limit("regions")
            .field("context.region"),
        ),
    }
}

/// Whether the passport region `listed` covers the request region `asked`: `*`, the same code,
/// or the country of a subdivision (`US` covers `US-CA`; `US-CA` does not cover `US`).
pub fn region_covers(listed: &str, asked: &str) -> bool {
    listed == "*"
        || listed == asked
        || (!listed.contains('-') && asked.split_once('-').map(|(c, _)| c) == Some(listed))
}

// ---------------------------------------------------------------------------------------------
// Money

/// Currencies whose minor unit is not 1/100 of the major unit (ISO 4217). Every other code
/// has two fraction digits.
const ZERO_DECIMAL: [&str; 17] = [
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const THREE_DECIMAL: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// How many fraction digits the currency's major unit has: 0 for the zero-decimal currencies
/// (JPY, KRW, …), 3 for BHD, IQD, JOD, KWD, LYD, OMR, TND, and 2 for every other code.
pub fn minor_unit_digits(currency: &str) -> u32 {
    if ZERO_DECIMAL.contains(&currency) {
        0
    } else if THREE_DECIMAL.contains(&currency) {
        3
    } else {
        2
    }
}

/// Why an amount cannot be expressed in minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amounts must not be negative")]
    Negative,
    #[error("the currency has {digits} fraction digits; the amount has more")]
    TooPrecise { digits: u32 },
    #[error("the amount is too large")]
    TooLarge,
}

/// Converts a JSON number in **major** units of `currency` to integer **minor** units, exactly:
/// `250` USD → `25000`, `0.1` USD → `10`, `250` JPY → `250`. More fraction digits than the
/// currency has (`12.345` USD) is an error, as are negative amounts and amounts beyond `u64`.
/// A number that serde_json read as a float is taken at its shortest round-trip decimal form
/// (so `100.10` is exactly 100.10; digits beyond about 15 significant ones are not kept).
pub fn to_minor_units(amount: &Number, currency: &str) -> Result<u64, AmountError> {
    let digits = minor_unit_digits(currency);
    if let Some(major) = amount.as_u64() {
        return 10u64
            .checked_pow(digits)
            .and_then(|scale| major.checked_mul(scale))
            .ok_or(AmountError::TooLarge);
    }
    if amount.as_i64().is_some() {
        return Err(AmountError::Negative);
    }
    let (negative, mantissa, exponent) =
        parse_decimal(&amount.to_string()).ok_or(AmountError::TooLarge)?;
    if mantissa == 0 {
        return Ok(0);
    }
    if negative {
        return Err(AmountError::Negative);
    }
    let shift = i64::from(exponent) + i64::from(digits);
    let minor = if shift >= 0 {
        u32::try_from(shift)
            .ok()
            .and_then(|s| 10u128.checked_pow(s))
            .and_then(|scale| mantissa.checked_mul(scale))
            .ok_or(AmountError::TooLarge)?
    } else {
        // The mantissa has no trailing zeros, so any negative shift leaves a fraction.
        return Err(AmountError::TooPrecise { digits });
    };
    u64::try_from(minor).map_err(|_| AmountError::TooLarge)
}

/// Refuses negative amounts (`-0` is zero).
fn check_sign(amount: &Number) -> Result<(), AmountError> {
    if amount.as_u64().is_some() {
        return Ok(());
    }
    match parse_decimal(&amount.to_string()) {
        Some((true, mantissa, _)) if mantissa != 0 => Err(AmountError::Negative),
        Some(_) => Ok(()),
        None => Err(AmountError::TooLarge),
    }
}

/// `-12.50e3` → `(true, 125, 2)`: sign, mantissa without trailing zeros, power of ten.
fn parse_decimal(s: &str) -> Option<(bool, u128, i32)> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.strip_prefix('+').unwrap_or(e).parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let all = int.bytes().chain(frac.bytes());
    let frac_len = i32::try_from(frac.len()).ok()?;
    let mut exponent = exponent.checked_sub(frac_len)?;
    let mut digits: Vec<u8> = Vec::with_capacity(int.len() + frac.len());
    for b in all {
        if !b.is_ascii_digit() {
            return None;
        }
        if !(digits.is_empty() && b == b'0') {
            digits.push(b - b'0');
        }
    }
    while digits.last() == Some(&0) {
        digits.pop();
        exponent = exponent.checked_add(1)?;
    }
    let mut value: u128 = 0;
    for d in digits {
        value = value.checked_mul(10)?.checked_add(u128::from(d))?;
    }
    Some((negative, value, exponent))
}

/// An ISO 4217 code, stored upper case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ccy([u8; 3]);

impl Ccy {
    fn parse_upper(s: &str) -> Option<Ccy> {
        match s.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Some(Ccy([a, b, c])),
            _ => None,
        }
    }

    fn parse_lower(s: &str) -> Option<Ccy> {
        match s.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_lowercase) => Some(Ccy([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// `12345` → `123.45 USD`.
    fn money(self, minor: u64) -> String {
        let digits = minor_unit_digits(self.as_str());
        let scale = 10u64.pow(digits);
        if digits == 0 {
            format!("{minor} {self}")
        } else {
            let width = digits as usize;
            format!("{}.{:0width$} {self}", minor / scale, minor % scale)
        }
    }
}

impl fmt::Display for Ccy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

/// Where a limit lives in the passport; rendered only when a reason names it.
#[derive(Clone, Copy, Debug)]
enum Path<'a> {
    /// `limits.<key>`
    Flat(&'a str),
    /// `capabilities[<i>].params.<key>`
    Param(usize, &'a str),
    /// `limits.<capability>.<key>`
    Cap(&'a str, &'a str),
    /// `limits.<capability>.currency_limits.<CCY>[.<key>]`
    CapCcy(&'a str, &'a str, &'a str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Flat(key) => write!(f, "limits.{key}"),
            Path::Param(i, key) => write!(f, "capabilities[{i}].params.{key}"),
            Path::Cap(cap, key) => write!(f, "limits.{cap}.{key}"),
            Path::CapCcy(cap, ccy, "") => write!(f, "limits.{cap}.currency_limits.{ccy}"),
            Path::CapCcy(cap, ccy, key) => write!(f, "limits.{cap}.currency_limits.{ccy}.{key}"),
        }
    }
}

/// Every limit that applies to one capability, from the three sources.
#[derive(Default)]
struct Limits<'a> {
    /// Some amount limit (or a currency declaration) exists: an amount and currency are needed.
    amount_limited: bool,
    /// Where amount limits were found, for messages.
    amount_sources: Vec<Path<'a>>,
    currencies: Vec<Ccy>,
    per_tx: Vec<(Path<'a>, Ccy, u64)>,
    daily: Vec<(Path<'a>, Ccy, u64)>,
    rows: Vec<(Path<'a>, u64)>,
    pii: Vec<(Path<'a>, bool)>,
    collections: Vec<(Path<'a>, &'a [Value])>,
    reason_codes: Vec<(Path<'a>, &'a [Value])>,
    min_assurance: Vec<(Path<'a>, AssuranceLevel)>,
    /// Some limit is keyed by currency (`currency_limits`, a flat money key, a `currency`
    /// param): the request's currency must be among [`Limits::currencies`].
    currency_keyed: bool,
    /// `supported_currencies` lists: the request's currency must be in each.
    supported: Vec<Vec<Ccy>>,
    approval: Vec<(Path<'a>, bool)>,
    /// `limit_unknown` and `oap.policy_error` reasons.
    problems: Vec<Reason>,
    /// Pack-only limits this decision cannot enforce ([`PACK_ONLY_KEYS`]).
    pack_only: Vec<Reason>,
}

impl<'a> Limits<'a> {
    fn unknown(&mut self, path: Path<'a>, why: &str) {
        self.problems.push(
            Reason::new(
                codes::LIMIT_UNKNOWN,
                format!("`{path}` is not a limit this registry understands{why}; it is not treated as allowed"),
            )
            .limit(path),
        );
    }

    fn malformed(&mut self, path: Path<'a>, expected: &str) {
        self.problems.push(
            Reason::new(
                codes::POLICY_ERROR,
                format!("the limit `{path}` cannot be read: it must be {expected}"),
            )
            .limit(path),
        );
    }

    fn pack_only(&mut self, path: Path<'a>, key: &str) {
        let message = match pack_enforcing(key) {
            Some(pack) => format!(
                "`{path}` restricts context this request does not carry; ask through the policy pack `{pack}` (POST /api/verify/policy/{pack}), which enforces it"
            ),
            None => format!(
                "`{path}` restricts context no built-in policy pack checks; it is not treated as allowed"
            ),
        };
        self.pack_only
            .push(Reason::new(codes::INVALID_CONTEXT, message).limit(path));
    }

    fn money(&mut self, path: Path<'a>, ccy: Ccy) {
        self.amount_limited = true;
        self.currency_keyed = true;
        self.amount_sources.push(path);
        if !self.currencies.contains(&ccy) {
            self.currencies.push(ccy);
        }
    }

    /// A limit amount in major units (flat keys, params).
    fn major(&mut self, path: Path<'a>, ccy: Ccy, value: &Value) -> Option<u64> {
        self.money(path, ccy);
        let minor = match value {
            Value::Number(n) => to_minor_units(n, ccy.as_str()).ok(),
            _ => None,
        };
        if minor.is_none() {
            self.malformed(
                path,
                &format!(
                    "a non-negative number in major units of {ccy} with at most {} fraction digits",
                    minor_unit_digits(ccy.as_str())
                ),
            );
        }
        minor
    }

    /// A limit amount in OAP integer minor units.
    fn minor(&mut self, path: Path<'a>, value: &Value) -> Option<u64> {
        let minor = value.as_u64();
        if minor.is_none() {
            self.malformed(path, "a non-negative integer in minor units");
        }
        minor
    }

    fn count(&mut self, path: Path<'a>, value: &Value) -> Option<u64> {
        let n = value.as_u64();
        if n.is_none() {
            self.malformed(path, "a non-negative integer");
        }
        n
    }

    fn flag(&mut self, path: Path<'a>, value: &Value) -> Option<bool> {
        let b = value.as_bool();
        if b.is_none() {
            self.malformed(path, "true or false");
        }
        b
    }

    fn strings(&mut self, path: Path<'a>, value: &'a Value) -> Option<&'a [Value]> {
        match value {
            Value::Array(items) if items.iter().all(Value::is_string) => Some(items),
            _ => {
                self.malformed(path, "an array of strings");
                None
            }
        }
    }
}

/// A top-level key of `limits` whose value is not an object, read by its shape.
#[derive(Debug, PartialEq, Eq)]
enum FlatKey<'k> {
    MaxPerTx { action: &'k str, ccy: Ccy },
    DailyCap { action: &'k str, ccy: Ccy },
    MaxRows { action: &'k str },
    AllowPii,
    Unknown,
}

fn parse_flat(key: &str) -> FlatKey<'_> {
    if key == "allow_pii" {
        return FlatKey::AllowPii;
    }
    let money = |suffix: &str| {
        key.strip_suffix(suffix)
            .and_then(|rest| rest.rsplit_once('_'))
            .filter(|(action, _)| !action.is_empty())
            .and_then(|(action, ccy)| Ccy::parse_lower(ccy).map(|c| (action, c)))
    };
    if let Some((action, ccy)) = money("_max_per_tx") {
        return FlatKey::MaxPerTx { action, ccy };
    }
    if let Some((action, ccy)) = money("_daily_cap") {
        return FlatKey::DailyCap { action, ccy };
    }
    if let Some(action) = key
        .strip_prefix("max_")
        .and_then(|rest| rest.strip_suffix("_rows"))
        .filter(|a| !a.is_empty())
    {
        return FlatKey::MaxRows { action };
    }
    FlatKey::Unknown
}

/// The action of a capability id: its last segment (`refund` for `payments.refund`).
fn action_of(capability: &str) -> &str {
    capability.rsplit('.').next().unwrap_or(capability)
}

/// Whether `key`'s words (split on `.` and `_`) contain `action`'s words in a row.
fn names_action(key: &str, action: &str) -> bool {
    let words: Vec<&str> = key.split(['.', '_']).collect();
    let wanted: Vec<&str> = action.split('_').collect();
    words.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

/// Whether an unknown top-level key applies to the capability with `action`: it names that
/// action, or it names no action of any capability the passport holds.
fn unknown_applies(key: &str, action: &str, held: &[Capability]) -> bool {
    names_action(key, action)
        || !held
            .iter()
            .any(|c| names_action(key, action_of(c.id.as_str())))
}

fn collect_limits<'a>(
    passport: &'a EdgePassport,
    index: usize,
    capability: &'a Capability,
    pack_keys: &[&str],
) -> Limits<'a> {
    let mut limits = Limits::default();
    let id = capability.id.as_str();
    let action = action_of(id);
    let held = passport.capabilities.as_slice();

    for (key, value) in &passport.limits {
        if let Value::Object(object) = value {
            if key == id {
                collect_oap(&mut limits, id, object, pack_keys);
            } else if !held.iter().any(|c| c.id.as_str() == key)
                && unknown_applies(key, action, held)
            {
                limits.unknown(
                    Path::Flat(key),
                    " (an object keyed by a capability this passport does not hold)",
                );
            }
            continue;
        }
        let path = Path::Flat(key);
        match parse_flat(key) {
            FlatKey::MaxPerTx { action: a, ccy } if a == action => {
                if let Some(minor) = limits.major(path, ccy, value) {
                    limits.per_tx.push((path, ccy, minor));
                }
            }
            FlatKey::DailyCap { action: a, ccy } if a == action => {
                if let Some(minor) = limits.major(path, ccy, value) {
                    limits.daily.push((path, ccy, minor));
                }
            }
            FlatKey::MaxRows { action: a } if a == action => {
                if let Some(n) = limits.count(path, value) {
                    limits.rows.push((path, n));
                }
            }
            FlatKey::AllowPii => {
                if let Some(b) = limits.flag(path, value) {
                    limits.pii.push((path, b));
                }
            }
            FlatKey::Unknown => {
                if unknown_applies(key, action, held) {
                    limits.unknown(path, "");
                }
            }
            // A known key for another action.
            FlatKey::MaxPerTx { .. } | FlatKey::DailyCap { .. } | FlatKey::MaxRows { .. } => {}
        }
    }

    collect_params(&mut limits, index, &capability.params);
    limits
}

fn collect_params<'a>(limits: &mut Limits<'a>, index: usize, params: &'a Map<String, Value>) {
    let currency = params.get("currency").map(|v| {
        let ccy = v.as_str().and_then(Ccy::parse_upper);
        match ccy {
            Some(c) => limits.money(Path::Param(index, "currency"), c),
            None => limits.malformed(
                Path::Param(index, "currency"),
                "an ISO 4217 code in upper case",
            ),
        }
        ccy
    });
    for (key, value) in params {
        let path = Path::Param(index, key);
        match key.as_str() {
            "currency" => {}
            "max_amount" => match currency {
                Some(Some(ccy)) => {
                    if let Some(minor) = limits.major(path, ccy, value) {
                        limits.per_tx.push((path, ccy, minor));
                    }
                }
                // A malformed currency param was reported already (and denies).
                Some(None) => {}
                None => limits.malformed(path, "accompanied by a `currency` param"),
            },
            "max_rows" => {
                if let Some(n) = limits.count(path, value) {
                    limits.rows.push((path, n));
                }
            }
            _ => limits.unknown(path, ""),
        }
    }
}

/// The OAP-layout limit keys (`limits["<capability>"].<key>`) a decision can only enforce with
/// context that a policy pack's request carries (`merchant_id`, `items`, `repository`, …), and
/// the shape each value must have. A native decision denies on every one that restricts the
/// capability (`oap.invalid_context`: it cannot carry that context); a pack denies on those it
/// does not enforce itself. None is ever treated as allowed.
pub const PACK_ONLY_KEYS: [(&str, Shape); 29] = [
    // finance.payment.charge.v1
    ("allowed_merchant_ids", Shape::List),
    ("allowed_countries", Shape::List),
    ("blocked_categories", Shape::List),
    ("max_items_per_tx", Shape::Count),
    // governance.data.access.v1
    ("allowed_classifications", Shape::List),
    ("permissions", Shape::Object),
    ("allowed_jurisdictions", Shape::List),
    ("allowed_destination_jurisdictions", Shape::List),
    ("balance_inquiry_cap_usd", Shape::Count),
    ("max_access_attempts_per_hour", Shape::Count),
    ("max_data_age_seconds", Shape::Count),
    // code.repository.merge.v1
    ("max_prs_per_day", Shape::Count),
    ("max_merges_per_day", Shape::Count),
    ("max_pr_size_kb", Shape::Count),
    ("allowed_repos", Shape::List),
    ("allowed_base_branches", Shape::List),
    ("path_allowlist", Shape::List),
    ("max_files_changed", Shape::Count),
    ("max_total_added_lines", Shape::Count),
    ("required_labels", Shape::List),
    ("required_reviews", Shape::Count),
    // OAP's passport schema: messaging.send, payments.payout, repo.release.publish
    ("msgs_per_min", Shape::Count),
    ("msgs_per_day", Shape::Count),
    ("allowed_recipients", Shape::Array),
    ("allowed_destination_types", Shape::List),
    ("max_payouts_per_day", Shape::Count),
    ("compliance_checks_required", Shape::Flag),
    ("allowed_branches", Shape::List),
    ("max_releases_per_day", Shape::Count),
];

/// What a pack-only limit's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An array of strings; empty restricts nothing.
    List,
    /// Any array; empty restricts nothing.
    Array,
    /// A non-negative integer.
    Count,
    /// `true` or `false`; `false` restricts nothing.
    Flag,
    /// A JSON object.
    Object,
}

impl Shape {
    /// `Some(restricts)` when `value` has this shape; `None` when it cannot be read.
    pub fn read(self, value: &Value) -> Option<bool> {
        match (self, value) {
            (Shape::List, Value::Array(items)) if items.iter().all(Value::is_string) => {
                Some(!items.is_empty())
            }
            (Shape::Array, Value::Array(items)) => Some(!items.is_empty()),
            (Shape::Count, v) if v.as_u64().is_some() => Some(true),
            (Shape::Flag, Value::Bool(b)) => Some(*b),
            (Shape::Object, Value::Object(_)) => Some(true),
            _ => None,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Shape::List => "an array of strings",
            Shape::Array => "an array",
            Shape::Count => "a non-negative integer",
            Shape::Flag => "true or false",
            Shape::Object => "a JSON object",
        }
    }
}

/// The built-in policy pack that enforces a pack-only key, for messages.
fn pack_enforcing(key: &str) -> Option<&'static str> {
    crate::packs::builtins()
        .iter()
        .find(|p| p.enforces(key))
        .map(|p| p.id.as_str())
}

fn collect_oap<'a>(
    limits: &mut Limits<'a>,
    id: &'a str,
    object: &'a Map<String, Value>,
    pack_keys: &[&str],
) {
    for (key, value) in object {
        let path = Path::Cap(id, key);
        match key.as_str() {
            "currency_limits" => {
                limits.amount_limited = true;
                limits.currency_keyed = true;
                limits.amount_sources.push(path);
                let Value::Object(currencies) = value else {
                    limits.malformed(path, "an object keyed by ISO 4217 code");
                    continue;
                };
                for (code, per_ccy) in currencies {
                    let ccy_path = Path::CapCcy(id, code, "");
                    let (Some(ccy), Value::Object(entries)) = (Ccy::parse_upper(code), per_ccy)
                    else {
                        limits.malformed(
                            ccy_path,
                            "keyed by an upper-case ISO 4217 code and an object",
                        );
                        continue;
                    };
                    limits.money(ccy_path, ccy);
                    for (limit, amount) in entries {
                        let path = Path::CapCcy(id, code, limit);
                        match limit.as_str() {
                            "max_per_tx" => {
                                if let Some(minor) = limits.minor(path, amount) {
                                    limits.per_tx.push((path, ccy, minor));
                                }
                            }
                            // `max_daily_amount` is the name OAP's schema gives payouts' cap.
                            "daily_cap" | "max_daily_amount" => {
                                if let Some(minor) = limits.minor(path, amount) {
                                    limits.daily.push((path, ccy, minor));
                                }
                            }
                            _ => limits.unknown(path, ""),
                        }
                    }
                }
            }
            "supported_currencies" => {
                let list = match value {
                    Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str().and_then(Ccy::parse_upper))
                        .collect::<Option<Vec<Ccy>>>(),
                    _ => None,
                };
                match list {
                    Some(list) => {
                        limits.amount_limited = true;
                        limits.amount_sources.push(path);
                        limits.supported.push(list);
                    }
                    None => limits.malformed(path, "an array of upper-case ISO 4217 codes"),
                }
            }
            // `max_export_rows` (data.export.create.v1) and `max_rows_per_export`
            // (governance.data.access.v1) are APort's names for the same limit.
            "max_rows" | "max_export_rows" | "max_rows_per_export" => {
                if let Some(n) = limits.count(path, value) {
                    limits.rows.push((path, n));
                }
            }
            "allow_pii" => {
                if let Some(b) = limits.flag(path, value) {
                    limits.pii.push((path, b));
                }
            }
            "allowed_collections" => {
                if let Some(list) = limits.strings(path, value) {
                    limits.collections.push((path, list));
                }
            }
            // `refund_reason_codes`: finance.payment.refund.v1's name for `reason_codes`.
            "reason_codes" | "refund_reason_codes" => {
                if let Some(list) = limits.strings(path, value) {
                    limits.reason_codes.push((path, list));
                }
            }
            // Every commit carries an idempotency key already (SPEC §11); a policy pack also
            // requires one on the request (see `crate::packs`).
            "idempotency_required" => {
                limits.flag(path, value);
            }
            "approval_required" => {
                if let Some(b) = limits.flag(path, value) {
                    limits.approval.push((path, b));
                }
            }
            // `require_assurance_at_least`: finance.payment.charge.v1's name for it.
            "min_assurance" | "require_assurance_at_least" => {
                let level = match value.as_str() {
                    Some("L0") => Some(AssuranceLevel::L0),
                    Some("L1") => Some(AssuranceLevel::L1),
                    Some("L2") => Some(AssuranceLevel::L2),
                    Some("L3") => Some(AssuranceLevel::L3),
                    _ => None,
                };
                match level {
                    Some(level) => limits.min_assurance.push((path, level)),
                    None => limits.malformed(path, "one of \"L0\", \"L1\", \"L2\", \"L3\""),
                }
            }
            other => match PACK_ONLY_KEYS.iter().find(|(k, _)| *k == other) {
                Some((_, shape)) => match shape.read(value) {
                    None => limits.malformed(path, shape.expected()),
                    Some(false) => {}
                    Some(true) if pack_keys.contains(&other) => {}
                    Some(true) => limits.pack_only(path, other),
                },
                None => limits.unknown(path, ""),
            },
        }
    }
}

fn check_limits(
    limits: &Limits<'_>,
    passport: &EdgePassport,
    capability: &Capability,
    ctx: &Ctx<'_>,
    spent: &SpentToday,
    out: &mut Found,
) -> Option<Spend> {
    let id = capability.id.as_str();
    out.extend(Check::LimitsReadable, limits.problems.iter().cloned());
    out.extend(Check::PackOnly, limits.pack_only.iter().cloned());

    for (path, level) in &limits.min_assurance {
        if passport.assurance_level < *level {
            out.push(
                Check::Assurance,
                Reason::new(
                    codes::ASSURANCE_INSUFFICIENT,
                    format!(
                        "`{id}` requires assurance {level:?} or higher; the passport has {:?}",
                        passport.assurance_level
                    ),
                )
                .limit(path),
            );
        }
    }

    let spend = check_amount(limits, id, ctx, spent, out);

    if !limits.rows.is_empty() {
        match ctx.rows {
            Some(rows) => {
                for (path, max) in &limits.rows {
                    if rows > *max {
                        out.push(
                            Check::Rows,
                            Reason::new(
                                codes::LIMIT_EXCEEDED,
                                format!("{rows} rows exceed the limit of {max} (`{path}`)"),
                            )
                            .limit(path)
                            .field("context.rows"),
                        );
                    }
                }
            }
            None if ctx.rows_given => {}
            None => {
                let sources = limits
                    .rows
                    .iter()
                    .map(|(p, _)| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(
                    Check::Rows,
                    Reason::new(
                        codes::INVALID_CONTEXT,
                        format!("rows is required: `{id}` has row limits ({sources})"),
                    )
                    .field("context.rows"),
                )
            }
        }
    }

    if ctx.pii {
        for (path, allowed) in &limits.pii {
            if !allowed {
                out.push(
                    Check::Pii,
                    Reason::new(
                        codes::LIMIT_EXCEEDED,
                        format!("personal data is not allowed (`{path}` is false)"),
                    )
                    .limit(path)
                    .field("context.pii"),
                );
            }
        }
    }

    check_listed(
        Check::Collection,
        &limits.collections,
        ctx.collection,
        "collection",
        id,
        out,
    );
    check_listed(
        Check::ReasonCode,
        &limits.reason_codes,
        ctx.reason_code,
        "reason_code",
        id,
        out,
    );
    for (path, needs) in &limits.approval {
        if *needs {
            out.push(
                Check::Approval,
                Reason::new(
                    codes::LIMIT_EXCEEDED,
                    format!("`{id}` needs a person's approval (`{path}` is true); an automated decision never allows it"),
                )
                .limit(path),
            );
        }
    }
    spend
}

fn check_amount(
    limits: &Limits<'_>,
    id: &str,
    ctx: &Ctx<'_>,
    spent: &SpentToday,
    out: &mut Found,
) -> Option<Spend> {
    let sources = || {
        limits
            .amount_sources
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let minor = match ctx.amount {
        Amount::Present(minor) => minor,
        Amount::Bad => return None,
        Amount::Absent => {
            if limits.amount_limited {
                out.push(
                    Check::AmountPerTx,
                    Reason::new(
                        codes::INVALID_CONTEXT,
                        format!(
                            "amount and currency are required: `{id}` has amount limits ({})",
                            sources()
                        ),
                    )
                    .field("context.amount"),
                );
            }
            return None;
        }
    };
    let Some(ccy) = ctx.currency else {
        if limits.amount_limited && !ctx.currency_given {
            out.push(
                Check::Currency,
                Reason::new(
                    codes::INVALID_CONTEXT,
                    format!(
                        "currency is required with an amount: `{id}` has amount limits ({})",
                        sources()
                    ),
                )
                .field("context.currency"),
            );
        }
        return None;
    };
    let minor = minor?;
    let keyed_out = limits.currency_keyed && !limits.currencies.contains(&ccy);
    let unsupported = limits.supported.iter().any(|list| !list.contains(&ccy));
    if limits.amount_limited && (keyed_out || unsupported) {
        let base = if limits.currency_keyed {
            limits.currencies.clone()
        } else {
            limits.supported.first().cloned().unwrap_or_default()
        };
        let usable: Vec<&str> = base
            .iter()
            .filter(|c| limits.supported.iter().all(|list| list.contains(c)))
            .map(Ccy::as_str)
            .collect();
        let supported = if usable.is_empty() {
            "none".to_owned()
        } else {
            usable.join(", ")
        };
        out.push(
            Check::Currency,
            Reason::new(
                codes::CURRENCY_UNSUPPORTED,
                format!("`{id}` has no limits in {ccy}; currencies it may use: {supported}"),
            )
            .field("context.currency"),
        );
    }
    for (path, c, max) in &limits.per_tx {
        if *c == ccy && minor > *max {
            out.push(
                Check::AmountPerTx,
                Reason::new(
                    codes::LIMIT_EXCEEDED,
                    format!(
                        "{} exceeds the per-transaction limit of {} (`{path}`)",
                        ccy.money(minor),
                        ccy.money(*max)
                    ),
                )
                .limit(path)
                .field("context.amount"),
            );
        }
    }
    let in_currency = spent.get(ccy.as_str()).copied().unwrap_or(0);
    let mut caps: Vec<DailyCap> = Vec::new();
    for (path, c, cap) in &limits.daily {
        if *c != ccy {
            continue;
        }
        let path = path.to_string();
        let already = spent.get(&path).copied().unwrap_or(in_currency);
        out.extend(
            Check::DailyCap,
            over_daily_cap(ccy, minor, already, *cap, &path),
        );
        caps.push(DailyCap {
            limit: path,
            cap_minor: *cap,
        });
    }
    caps.sort_by_key(|c| c.cap_minor);
    Some(Spend {
        currency: ccy.as_str().to_owned(),
        amount_minor: minor,
        daily_caps: caps,
    })
}

fn check_listed(
    check: Check,
    lists: &[(Path<'_>, &[Value])],
    asked: Option<&str>,
    name: &str,
    id: &str,
    out: &mut Found,
) {
    let Some(first) = lists.first() else {
        return;
    };
    let Some(asked) = asked else {
        out.push(
            check,
            Reason::new(
                codes::INVALID_CONTEXT,
                format!(
                    "{name} is required: `{id}` allows only listed values (`{}`)",
                    first.0
                ),
            )
            .limit(first.0)
            .field(&format!("context.{name}")),
        );
        return;
    };
    for (path, list) in lists {
        if !list.iter().any(|v| v.as_str() == Some(asked)) {
            out.push(
                check,
                Reason::new(
                    codes::LIMIT_EXCEEDED,
                    format!("{name} `{asked}` is not among the allowed values of `{path}`"),
                )
                .limit(path)
                .field(&format!("context.{name}")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AgentId, OrgId};
    use crate::passport::{NewAgent, Passport};
    use crate::timestamp::Timestamp;
    use serde_json::json;

    const VECTORS: &str = include_str!("../tests/vectors/policy-seed.json");

    fn vectors() -> Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    /// The edge view of a passport written as in SPEC §3 (status defaults to `active`).
    fn passport_from(mut v: Value) -> EdgePassport {
        let obj = v.as_object_mut().unwrap();
        let text = |v: Option<Value>, default: &str| {
            v.and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| default.to_owned())
        };
        let agent_id = text(
            obj.remove("agent_id"),
            "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
        );
        let org_id = text(obj.remove("org_id"), "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71");
        let status = Status::parse(&text(obj.remove("status"), "active")).unwrap();
        let regions = obj.remove("regions");
        let new = NewAgent::from_json(v).unwrap();
        let p = Passport::register(
            new,
            AgentId::parse(&agent_id).unwrap(),
            OrgId::parse(&org_id).unwrap(),
            Timestamp::from_unix_millis(1_795_000_000_000),
        )
        .unwrap();
        let mut e = EdgePassport::from(&p);
        e.status = status;
        if let Some(regions) = regions {
            e.regions = serde_json::from_value(regions).unwrap();
        }
        e
    }

    fn seed() -> EdgePassport {
        passport_from(vectors()["passport"].clone())
    }

    fn request(capability: &str, context: Value) -> DecisionRequest {
        DecisionRequest {
            capability: capability.to_owned(),
            context: serde_json::from_value(context).unwrap(),
            min_assurance: None,
        }
    }

    fn ask(p: &EdgePassport, capability: &str, context: Value) -> Evaluation {
        decide(p, &request(capability, context))
    }

    fn codes_of(e: &Evaluation) -> Vec<&str> {
        e.codes()
    }

    fn limits_of(e: &Evaluation) -> Vec<&str> {
        e.reasons
            .iter()
            .filter_map(|r| r.limit.as_deref())
            .collect()
    }

    fn fields_of(e: &Evaluation) -> Vec<&str> {
        e.reasons
            .iter()
            .filter_map(|r| r.field.as_deref())
            .collect()
    }

    fn assert_allowed(e: &Evaluation) {
        assert!(e.allow, "{e:#?}");
        assert_eq!(codes_of(e), [codes::ALLOWED], "{e:#?}");
    }

    /// The seed passport with its `limits` replaced.
    fn seed_with_limits(limits: Value) -> EdgePassport {
        let mut p = seed();
        p.limits = limits.as_object().unwrap().clone();
        p
    }

    /// The seed passport with capabilities without params and the given limits.
    fn plain_with_limits(limits: Value) -> EdgePassport {
        let mut p = seed_with_limits(limits);
        for c in &mut p.capabilities {
            c.params.clear();
        }
        p
    }

    /// The OAP 1.0 layout example of docs/policy.md (amounts in minor units).
    fn oap_limits() -> Value {
        json!({
            "payments.refund": {
                "currency_limits": { "USD": { "max_per_tx": 10000, "daily_cap": 100000 } },
                "reason_codes": ["customer_request"]
            },
            "data.export": { "max_rows": 1000, "allow_pii": false, "allowed_collections": ["orders"] }
        })
    }

    // --- The public vectors ------------------------------------------------------------------

    #[test]
    fn seed_vectors_reproduce() {
        let v = vectors();
        let passport = passport_from(v["passport"].clone());
        let cases = v["cases"].as_array().unwrap();
        assert!(cases.len() >= 4);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let req = DecisionRequest {
                capability: case["capability"].as_str().unwrap().to_owned(),
                context: Context::from_json(case["context"].clone()).unwrap(),
                min_assurance: None,
            };
            let e = decide(&passport, &req);
            assert_eq!(Value::Bool(e.allow), case["allow"], "{name}: {e:#?}");
            for code in case["reasons"].as_array().unwrap() {
                assert!(e.has(code.as_str().unwrap()), "{name}: {code} in {e:#?}");
            }
            if e.allow {
                assert_eq!(codes_of(&e), [codes::ALLOWED], "{name}");
            }
        }
    }

    #[test]
    fn vectors_copy_matches_the_shared_original() {
        // CI checks the repository out beside `shared/`; elsewhere there is nothing to compare.
        let original = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/vectors/policy-seed.json");
        if let Ok(bytes) = std::fs::read(&original) {
            assert!(
                bytes == VECTORS.as_bytes(),
                "shared/tests/vectors/policy-seed.json differs from {}",
                original.display()
            );
        }
    }

    #[test]
    fn worked_example_of_the_docs() {
        // docs/policy.md: "may it refund $250 in US-CA?" (amount in major units).
        let body = json!({
            "capability": "payments.refund",
            "context": { "amount": 250, "currency": "USD", "region": "US-CA" }
        });
        let req: DecisionRequest = serde_json::from_value(body).unwrap();
        let e = serde_json::to_value(decide(&seed(), &req)).unwrap();
        let expected = json!({
            "allow": false,
            "reasons": [
                {
                    "code": "oap.limit_exceeded",
                    "message": "250.00 USD exceeds the per-transaction limit of 100.00 USD (`limits.refund_usd_max_per_tx`)",
                    "limit": "limits.refund_usd_max_per_tx",
                    "field": "context.amount"
                },
                {
                    "code": "oap.limit_exceeded",
                    "message": "250.00 USD exceeds the per-transaction limit of 100.00 USD (`capabilities[0].params.max_amount`)",
                    "limit": "capabilities[0].params.max_amount",
                    "field": "context.amount"
                }
            ],
            "spend": {
                "currency": "USD",
                "amount_minor": 25000,
                "daily_caps": [ { "limit": "limits.refund_usd_daily_cap", "cap_minor": 100000 } ]
            }
        });
        assert_eq!(e, expected);
        let ok = serde_json::to_value(ask(
            &seed(),
            "payments.refund",
            json!({"amount": 50, "currency": "USD", "region": "US-CA"}),
        ))
        .unwrap();
        assert_eq!(ok["allow"], json!(true));
        assert_eq!(
            ok["reasons"],
            json!([{ "code": "oap.allowed", "message": "`payments.refund` is allowed: every check passed" }])
        );
        assert_eq!(ok["spend"]["amount_minor"], json!(5000));
    }

    // --- Status and capability ---------------------------------------------------------------

    #[test]
    fn only_an_active_passport_is_allowed() {
        for status in [Status::Draft, Status::Suspended, Status::Revoked] {
            let mut p = seed();
            p.status = status;
            p.status_reason = Some("fraud review".into());
            let e = ask(
                &p,
                "payments.refund",
                json!({"amount": 50, "currency": "USD", "region": "US-CA"}),
            );
            assert!(!e.allow);
            assert_eq!(codes_of(&e), [codes::PASSPORT_SUSPENDED]);
            assert!(e.reasons[0].message.contains(status.as_str()), "{e:#?}");
            assert!(e.reasons[0].message.contains("fraud review"));
        }
    }

    #[test]
    fn the_capability_must_be_held_exactly() {
        for cap in [
            "payments.charge",
            "payments",
            "payments.refund.partial",
            "Pay!",
            "",
        ] {
            let e = ask(
                &seed(),
                cap,
                json!({"amount": 50, "currency": "USD", "region": "US-CA"}),
            );
            assert_eq!(codes_of(&e), [codes::UNKNOWN_CAPABILITY], "{cap}");
            assert_eq!(e.spend, None);
        }
        // Limits are not evaluated for a capability that is not held, but the context still is.
        let e = ask(
            &seed(),
            "payments.charge",
            json!({"amount": -1, "region": "US-TX"}),
        );
        assert_eq!(
            codes_of(&e),
            [
                codes::UNKNOWN_CAPABILITY,
                codes::INVALID_CONTEXT,
                codes::REGION_BLOCKED
            ]
        );
    }

    // --- Regions -----------------------------------------------------------------------------

    #[test]
    fn region_rules() {
        let ok: &[&str] = &[codes::ALLOWED];
        let blocked: &[&str] = &[codes::REGION_BLOCKED];
        let invalid: &[&str] = &[codes::INVALID_CONTEXT];
        let cases: &[(&[&str], Option<&str>, &[&str])] = &[
            (&["US-NY", "US-CA"], Some("US-CA"), ok),
            (&["US-NY", "US-CA"], Some("US-TX"), blocked),
            // A subdivision does not cover its whole country.
            (&["US-NY", "US-CA"], Some("US"), blocked),
            (&["US-NY", "US-CA"], None, invalid),
            (&["US-NY", "US-CA"], Some("us-ca"), invalid),
            (&["US-NY", "US-CA"], Some("*"), invalid),
            (&["US-NY", "US-CA"], Some("California"), invalid),
            // A country covers its subdivisions.
            (&["US"], Some("US-TX"), ok),
            (&["US"], Some("US"), ok),
            (&["US"], Some("CA"), blocked),
            (&["US"], Some("CA-ON"), blocked),
            (&["GB", "US-CA"], Some("GB-ENG"), ok),
            (&["*"], None, ok),
            (&["*"], Some("GB-ENG"), ok),
            (&["*"], Some("*"), invalid),
            // No regions: nowhere.
            (&[], Some("US-CA"), blocked),
            (&[], None, blocked),
            (
                &[],
                Some("x"),
                &[codes::INVALID_CONTEXT, codes::REGION_BLOCKED],
            ),
        ];
        for (regions, region, expected) in cases {
            let mut p = seed();
            p.regions = regions
                .iter()
                .map(|r| crate::Region::parse(r).unwrap())
                .collect();
            let mut ctx = json!({"rows": 10});
            if let Some(r) = region {
                ctx["region"] = json!(r);
            }
            let e = ask(&p, "data.export", ctx);
            assert_eq!(codes_of(&e), *expected, "{regions:?} {region:?}: {e:#?}");
            assert_eq!(e.allow, *expected == ok);
        }
        assert!(region_covers("US", "US-CA"));
        assert!(!region_covers("US-CA", "US"));
        assert!(!region_covers("U", "US-CA"));
    }

    // --- Amounts: flat seed keys (major units) -----------------------------------------------

    #[test]
    fn flat_per_transaction_limit_in_major_units() {
        let p = seed();
        for amount in [
            json!(0),
            json!(50),
            json!(99.99),
            json!(100),
            json!(100.0),
            json!(1e2),
        ] {
            let e = ask(
                &p,
                "payments.refund",
                json!({"amount": amount, "currency": "USD", "region": "US-CA"}),
            );
            assert_allowed(&e);
        }
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 100.01, "currency": "USD", "region": "US-CA"}),
        );
        assert_eq!(
            codes_of(&e),
            [codes::LIMIT_EXCEEDED, codes::LIMIT_EXCEEDED],
            "{e:#?}"
        );
        assert_eq!(
            limits_of(&e),
            [
                "limits.refund_usd_max_per_tx",
                "capabilities[0].params.max_amount"
            ]
        );
        assert!(e.reasons[0].message.contains("100.01 USD"), "{e:#?}");
        assert_eq!(e.spend.as_ref().map(|s| s.amount_minor), Some(10001));
    }

    #[test]
    fn flat_limits_may_have_cents() {
        let p = plain_with_limits(json!({"refund_usd_max_per_tx": 99.99}));
        let base = json!({"currency": "USD", "region": "US-CA"});
        let at = |amount: Value| {
            let mut ctx = base.clone();
            ctx["amount"] = amount;
            ask(&p, "payments.refund", ctx)
        };
        assert_allowed(&at(json!(99.99)));
        assert_eq!(codes_of(&at(json!(100))), [codes::LIMIT_EXCEEDED]);
    }

    #[test]
    fn malformed_amounts_are_invalid_context() {
        let cases = [
            (json!({"amount": -1, "currency": "USD"}), "context.amount"),
            (json!({"amount": -0.5, "currency": "USD"}), "context.amount"),
            (
                json!({"amount": 12.345, "currency": "USD"}),
                "context.amount",
            ),
            (
                json!({"amount": 0.001, "currency": "USD"}),
                "context.amount",
            ),
            (json!({"amount": 1e30, "currency": "USD"}), "context.amount"),
            (json!({"amount": 50}), "context.currency"),
            (json!({"amount": 50, "currency": "usd"}), "context.currency"),
            (json!({"amount": 50, "currency": "US"}), "context.currency"),
            (json!({"currency": "USD"}), "context.amount"),
            (json!({}), "context.amount"),
        ];
        for (mut ctx, field) in cases {
            ctx["region"] = json!("US-CA");
            let e = ask(&seed(), "payments.refund", ctx.clone());
            assert_eq!(codes_of(&e), [codes::INVALID_CONTEXT], "{ctx}: {e:#?}");
            assert_eq!(fields_of(&e), [field], "{ctx}");
        }
        // With no amount limits an amount needs no currency, but still a sign.
        let p = plain_with_limits(json!({}));
        assert_allowed(&ask(
            &p,
            "payments.refund",
            json!({"amount": 5.555, "region": "US-CA"}),
        ));
        assert_eq!(
            codes_of(&ask(
                &p,
                "payments.refund",
                json!({"amount": -5, "region": "US-CA"})
            )),
            [codes::INVALID_CONTEXT]
        );
        // -0 is zero.
        assert_allowed(&ask(
            &seed(),
            "payments.refund",
            json!({"amount": -0.0, "currency": "USD", "region": "US-CA"}),
        ));
    }

    #[test]
    fn other_currencies_are_unsupported_when_only_usd_limits_exist() {
        for ccy in ["EUR", "JPY", "GBP"] {
            let e = ask(
                &seed(),
                "payments.refund",
                json!({"amount": 50, "currency": ccy, "region": "US-CA"}),
            );
            assert_eq!(codes_of(&e), [codes::CURRENCY_UNSUPPORTED], "{ccy}");
            assert!(e.reasons[0].message.contains("USD"));
            assert_eq!(e.reasons[0].field.as_deref(), Some("context.currency"));
        }
        // A second currency is opened by a limit in it.
        let p = seed_with_limits(json!({
            "refund_usd_max_per_tx": 100, "refund_eur_max_per_tx": 80, "allow_pii": false
        }));
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 80, "currency": "EUR", "region": "US-CA"}),
        );
        assert_allowed(&e);
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 80.01, "currency": "EUR", "region": "US-CA"}),
        );
        assert_eq!(limits_of(&e), ["limits.refund_eur_max_per_tx"]);
        // A capability without any amount limit takes any currency.
        let p = plain_with_limits(json!({}));
        assert_allowed(&ask(
            &p,
            "payments.refund",
            json!({"amount": 5000, "currency": "CHF", "region": "US-CA"}),
        ));
    }

    #[test]
    fn daily_cap_denies_a_single_amount_above_it() {
        let p =
            plain_with_limits(json!({"refund_usd_max_per_tx": 5000, "refund_usd_daily_cap": 1000}));
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 1500, "currency": "USD", "region": "US-CA"}),
        );
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert_eq!(limits_of(&e), ["limits.refund_usd_daily_cap"]);
        assert!(e.reasons[0].message.contains("daily cap of 1000.00 USD"));
        assert_allowed(&ask(
            &p,
            "payments.refund",
            json!({"amount": 1000, "currency": "USD", "region": "US-CA"}),
        ));
    }

    #[test]
    fn daily_cap_counts_what_was_spent_today() {
        let p = plain_with_limits(json!({"refund_usd_daily_cap": 1000}));
        let req = request(
            "payments.refund",
            json!({"amount": 100, "currency": "USD", "region": "US-CA"}),
        );
        let spent = |usd: u64| SpentToday::from([("USD".to_owned(), usd)]);
        // 900.00 + 100.00 = the cap exactly: allowed.
        let e = decide_with_spent(&p, &req, &spent(90_000));
        assert_allowed(&e);
        assert_eq!(
            e.spend,
            Some(Spend {
                currency: "USD".into(),
                amount_minor: 10_000,
                daily_caps: vec![DailyCap {
                    limit: "limits.refund_usd_daily_cap".into(),
                    cap_minor: 100_000
                }],
            })
        );
        // 900.01 + 100.00: one cent over.
        let e = decide_with_spent(&p, &req, &spent(90_001));
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert!(
            e.reasons[0].message.contains("900.01 USD already spent"),
            "{e:#?}"
        );
        // Spending in another currency does not count; huge values do not overflow.
        let other = SpentToday::from([("EUR".to_owned(), u64::MAX)]);
        assert_allowed(&decide_with_spent(&p, &req, &other));
        assert!(!decide_with_spent(&p, &req, &spent(u64::MAX)).allow);
    }

    #[test]
    fn spending_by_cap_path_counts_against_that_cap_only() {
        let p = plain_with_limits(json!({
            "refund_usd_daily_cap": 1000,
            "payments.refund": { "currency_limits": { "USD": { "daily_cap": 50000 } } }
        }));
        let req = request(
            "payments.refund",
            json!({"amount": 100, "currency": "USD", "region": "US-CA"}),
        );
        let flat = "limits.refund_usd_daily_cap";
        let keyed = "limits.payments.refund.currency_limits.USD.daily_cap";
        let e = decide_with_spent(&p, &req, &SpentToday::new());
        assert_allowed(&e);
        let caps: Vec<&str> = e
            .spend
            .as_ref()
            .unwrap()
            .daily_caps
            .iter()
            .map(|c| c.limit.as_str())
            .collect();
        assert_eq!(caps, [keyed, flat], "tightest first");
        // The flat cap's row is nearly full, the keyed one empty: denied by the flat cap only.
        let spent = SpentToday::from([(flat.to_owned(), 95_000)]);
        let e = decide_with_spent(&p, &req, &spent);
        assert_eq!(limits_of(&e), [flat]);
        // A cap's own row wins over its currency's total (which would put the keyed cap over).
        let spent = SpentToday::from([(keyed.to_owned(), 0), ("USD".to_owned(), 45_000)]);
        assert_allowed(&decide_with_spent(&p, &req, &spent));
        let spent = SpentToday::from([(keyed.to_owned(), 40_001), ("USD".to_owned(), 0)]);
        let e = decide_with_spent(&p, &req, &spent);
        assert_eq!(limits_of(&e), [keyed], "{e:#?}");
        assert!(
            e.reasons[0].message.contains("400.01 USD already spent"),
            "{e:#?}"
        );
    }

    #[test]
    fn capability_params_are_limits() {
        let p = seed_with_limits(json!({}));
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 150, "currency": "USD", "region": "US-CA"}),
        );
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert_eq!(limits_of(&e), ["capabilities[0].params.max_amount"]);
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 50, "currency": "EUR", "region": "US-CA"}),
        );
        assert_eq!(codes_of(&e), [codes::CURRENCY_UNSUPPORTED]);
        let e = ask(&p, "data.export", json!({"rows": 1001, "region": "US-NY"}));
        assert_eq!(limits_of(&e), ["capabilities[1].params.max_rows"]);
        assert_allowed(&ask(
            &p,
            "data.export",
            json!({"rows": 1000, "region": "US-NY"}),
        ));
    }

    // --- Amounts: OAP layout (minor units) ---------------------------------------------------

    #[test]
    fn oap_layout_in_minor_units() {
        let p = plain_with_limits(oap_limits());
        let refund = |amount: Value, extra: Value| {
            let mut ctx = json!({"amount": amount, "currency": "USD", "region": "US-CA"});
            for (k, v) in extra.as_object().unwrap() {
                ctx[k] = v.clone();
            }
            ask(&p, "payments.refund", ctx)
        };
        let reason = json!({"reason_code": "customer_request"});
        // max_per_tx 10000 is 100.00 USD.
        assert_allowed(&refund(json!(100), reason.clone()));
        let e = refund(json!(100.01), reason.clone());
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert_eq!(
            limits_of(&e),
            ["limits.payments.refund.currency_limits.USD.max_per_tx"]
        );
        let e = refund(json!(100.001), reason.clone());
        assert_eq!(codes_of(&e), [codes::INVALID_CONTEXT]);
        // Reason codes are required and listed.
        let e = refund(json!(10), json!({}));
        assert_eq!(codes_of(&e), [codes::INVALID_CONTEXT]);
        assert_eq!(fields_of(&e), ["context.reason_code"]);
        let e = refund(json!(10), json!({"reason_code": "fraud"}));
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert_eq!(limits_of(&e), ["limits.payments.refund.reason_codes"]);
        // The daily cap, 100000, is 1000.00 USD.
        let req = request(
            "payments.refund",
            json!({"amount": 10.01, "currency": "USD", "region": "US-CA", "reason_code": "customer_request"}),
        );
        let spent = SpentToday::from([("USD".to_owned(), 99_000)]);
        let e = decide_with_spent(&p, &req, &spent);
        assert_eq!(
            limits_of(&e),
            ["limits.payments.refund.currency_limits.USD.daily_cap"]
        );
        // Another currency.
        let mut ctx = json!({"amount": 1, "currency": "EUR", "region": "US-CA", "reason_code": "customer_request"});
        assert_eq!(
            codes_of(&ask(&p, "payments.refund", ctx.clone())),
            [codes::CURRENCY_UNSUPPORTED]
        );
        ctx["currency"] = json!("USD");
        assert_allowed(&ask(&p, "payments.refund", ctx));
    }

    #[test]
    fn oap_layout_for_exports() {
        let p = plain_with_limits(oap_limits());
        let export = |ctx: Value| ask(&p, "data.export", ctx);
        assert_allowed(&export(
            json!({"rows": 1000, "collection": "orders", "region": "US-NY"}),
        ));
        let e = export(json!({"rows": 1001, "collection": "orders", "region": "US-NY"}));
        assert_eq!(limits_of(&e), ["limits.data.export.max_rows"]);
        let e = export(json!({"rows": 1, "collection": "users", "region": "US-NY"}));
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert_eq!(limits_of(&e), ["limits.data.export.allowed_collections"]);
        let e = export(json!({"rows": 1, "region": "US-NY"}));
        assert_eq!(codes_of(&e), [codes::INVALID_CONTEXT]);
        assert_eq!(fields_of(&e), ["context.collection"]);
        let e = export(json!({"rows": 1, "collection": "orders", "pii": true, "region": "US-NY"}));
        assert_eq!(limits_of(&e), ["limits.data.export.allow_pii"]);
    }

    #[test]
    fn minor_units_follow_the_currency() {
        let p = plain_with_limits(json!({
            "payments.refund": { "currency_limits": {
                "JPY": { "max_per_tx": 10000 },
                "KWD": { "max_per_tx": 1500 },
                "USD": {}
            } }
        }));
        let refund = |amount: Value, ccy: &str| {
            ask(
                &p,
                "payments.refund",
                json!({"amount": amount, "currency": ccy, "region": "US-CA"}),
            )
        };
        assert_allowed(&refund(json!(10000), "JPY"));
        assert_eq!(
            codes_of(&refund(json!(10001), "JPY")),
            [codes::LIMIT_EXCEEDED]
        );
        assert_eq!(
            codes_of(&refund(json!(100.5), "JPY")),
            [codes::INVALID_CONTEXT]
        );
        assert!(refund(json!(10001), "JPY").reasons[0]
            .message
            .contains("10001 JPY"));
        // 1500 fils = 1.500 KWD.
        assert_allowed(&refund(json!(1.5), "KWD"));
        let e = refund(json!(1.501), "KWD");
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert!(e.reasons[0].message.contains("1.501 KWD"), "{e:#?}");
        assert_eq!(
            codes_of(&refund(json!(1.5001), "KWD")),
            [codes::INVALID_CONTEXT]
        );
        // An empty currency entry opens the currency with no amount limit.
        assert_allowed(&refund(json!(1_000_000), "USD"));
        assert_eq!(
            codes_of(&refund(json!(1), "EUR")),
            [codes::CURRENCY_UNSUPPORTED]
        );
    }

    #[test]
    fn an_empty_currency_limits_object_supports_no_currency() {
        let p = plain_with_limits(json!({"payments.refund": {"currency_limits": {}}}));
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
        );
        assert_eq!(codes_of(&e), [codes::CURRENCY_UNSUPPORTED]);
        assert!(e.reasons[0].message.contains("none"));
    }

    #[test]
    fn to_minor_units_is_exact() {
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        let cases: &[(Value, &str, Result<u64, AmountError>)] = &[
            (json!(250), "USD", Ok(25_000)),
            (json!(250.0), "USD", Ok(25_000)),
            (json!(0.1), "USD", Ok(10)),
            (json!(0.29), "USD", Ok(29)),
            (json!(1e2), "USD", Ok(10_000)),
            (json!(1.5e-1), "USD", Ok(15)),
            (json!(123456789012.34), "USD", Ok(12_345_678_901_234)),
            (json!(250), "JPY", Ok(250)),
            (json!(250.0), "JPY", Ok(250)),
            (json!(1.234), "KWD", Ok(1234)),
            (json!(0), "USD", Ok(0)),
            (json!(-0.0), "USD", Ok(0)),
            (
                json!(12.345),
                "USD",
                Err(AmountError::TooPrecise { digits: 2 }),
            ),
            (
                json!(0.5),
                "JPY",
                Err(AmountError::TooPrecise { digits: 0 }),
            ),
            (json!(-1), "USD", Err(AmountError::Negative)),
            (json!(-0.01), "USD", Err(AmountError::Negative)),
            (json!(1e30), "USD", Err(AmountError::TooLarge)),
            (json!(u64::MAX), "USD", Err(AmountError::TooLarge)),
            (json!(u64::MAX), "JPY", Ok(u64::MAX)),
            (
                json!(1.7976931348623157e308),
                "USD",
                Err(AmountError::TooLarge),
            ),
        ];
        for (amount, ccy, expected) in cases {
            assert_eq!(
                to_minor_units(&n(amount.clone()), ccy),
                *expected,
                "{amount} {ccy}"
            );
        }
        assert_eq!(minor_unit_digits("USD"), 2);
        assert_eq!(minor_unit_digits("JPY"), 0);
        assert_eq!(minor_unit_digits("KRW"), 0);
        assert_eq!(minor_unit_digits("BHD"), 3);
        assert_eq!(parse_decimal("-12.50e3"), Some((true, 125, 2)));
        assert_eq!(parse_decimal("1E+2"), Some((false, 1, 2)));
        assert_eq!(parse_decimal("0.000").map(|(_, m, _)| m), Some(0));
        assert_eq!(parse_decimal("."), None);
        assert_eq!(parse_decimal("1x"), None);
        assert_eq!(Ccy([b'K', b'W', b'D']).money(1500), "1.500 KWD");
        assert_eq!(Ccy([b'U', b'S', b'D']).money(5), "0.05 USD");
    }

    // --- Rows, PII, assurance ----------------------------------------------------------------

    #[test]
    fn rows() {
        let p = seed();
        let export = |ctx: Value| ask(&p, "data.export", ctx);
        let e = export(json!({"rows": 1001, "region": "US-NY"}));
        assert_eq!(
            limits_of(&e),
            ["limits.max_export_rows", "capabilities[1].params.max_rows"]
        );
        for bad in [json!(-1), json!(1.5), json!(1e3)] {
            let e = export(json!({"rows": bad, "region": "US-NY"}));
            assert_eq!(codes_of(&e), [codes::INVALID_CONTEXT], "{bad}");
            assert_eq!(fields_of(&e), ["context.rows"]);
        }
        let e = export(json!({"region": "US-NY"}));
        assert_eq!(codes_of(&e), [codes::INVALID_CONTEXT]);
        assert_eq!(fields_of(&e), ["context.rows"]);
        assert!(e.reasons[0].message.contains("limits.max_export_rows"));
        // Rows are not required where no row limit applies.
        assert_allowed(&ask(
            &p,
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
        ));
    }

    #[test]
    fn pii() {
        let p = seed();
        let e = ask(
            &p,
            "data.export",
            json!({"rows": 1, "pii": true, "region": "US-NY"}),
        );
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert_eq!(limits_of(&e), ["limits.allow_pii"]);
        assert!(e.reasons[0].message.contains("personal data"));
        // The flat `allow_pii` is global.
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA", "pii": true}),
        );
        assert_eq!(limits_of(&e), ["limits.allow_pii"]);
        let p = seed_with_limits(json!({"allow_pii": true}));
        assert_allowed(&ask(
            &p,
            "data.export",
            json!({"rows": 1, "pii": true, "region": "US-NY"}),
        ));
        // No key: no restriction.
        let p = plain_with_limits(json!({}));
        assert_allowed(&ask(
            &p,
            "data.export",
            json!({"pii": true, "region": "US-NY"}),
        ));
    }

    #[test]
    fn assurance() {
        let p = plain_with_limits(json!({"data.export": {"min_assurance": "L3"}}));
        let e = ask(&p, "data.export", json!({"region": "US-NY"}));
        assert_eq!(codes_of(&e), [codes::ASSURANCE_INSUFFICIENT]);
        assert_eq!(limits_of(&e), ["limits.data.export.min_assurance"]);
        let p = plain_with_limits(json!({"data.export": {"min_assurance": "L2"}}));
        assert_allowed(&ask(&p, "data.export", json!({"region": "US-NY"})));
        let mut req = request("data.export", json!({"region": "US-NY"}));
        req.min_assurance = Some(AssuranceLevel::L3);
        let e = decide(&p, &req);
        assert_eq!(codes_of(&e), [codes::ASSURANCE_INSUFFICIENT]);
        assert_eq!(fields_of(&e), ["min_assurance"]);
        req.min_assurance = Some(AssuranceLevel::L2);
        assert_allowed(&decide(&p, &req));
    }

    // --- Every failure together --------------------------------------------------------------

    #[test]
    fn a_denial_lists_every_failed_check() {
        let mut p = seed();
        p.status = Status::Suspended;
        let mut req = request(
            "payments.refund",
            json!({"amount": 500, "currency": "USD", "region": "US-TX", "pii": true}),
        );
        req.min_assurance = Some(AssuranceLevel::L3);
        let e = decide_with_spent(&p, &req, &SpentToday::from([("USD".into(), 60_000)]));
        assert_eq!(
            codes_of(&e),
            [
                codes::PASSPORT_SUSPENDED,
                codes::ASSURANCE_INSUFFICIENT,
                codes::REGION_BLOCKED,
                codes::LIMIT_EXCEEDED,
                codes::LIMIT_EXCEEDED,
                codes::LIMIT_EXCEEDED,
                codes::LIMIT_EXCEEDED,
            ],
            "{e:#?}"
        );
        assert_eq!(
            limits_of(&e),
            [
                "assurance_level",
                "regions",
                "limits.refund_usd_max_per_tx",
                "capabilities[0].params.max_amount",
                "limits.refund_usd_daily_cap",
                "limits.allow_pii",
            ]
        );
        let e = ask(
            &plain_with_limits(oap_limits()),
            "data.export",
            json!({"rows": 5000, "pii": true, "collection": "users", "currency": "usd"}),
        );
        assert_eq!(
            codes_of(&e),
            [
                codes::INVALID_CONTEXT,
                codes::INVALID_CONTEXT,
                codes::LIMIT_EXCEEDED,
                codes::LIMIT_EXCEEDED,
                codes::LIMIT_EXCEEDED,
            ],
            "{e:#?}"
        );
        assert_eq!(fields_of(&e)[..2], ["context.currency", "context.region"]);
    }

    // --- Unknown and malformed limit keys ----------------------------------------------------

    fn refund_ok(p: &EdgePassport) -> Evaluation {
        ask(
            p,
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
        )
    }

    fn export_ok(p: &EdgePassport) -> Evaluation {
        ask(p, "data.export", json!({"rows": 1, "region": "US-NY"}))
    }

    fn with_limit(key: &str, value: Value) -> EdgePassport {
        let mut p = seed();
        p.limits.insert(key.to_owned(), value);
        p
    }

    fn assert_unknown(e: &Evaluation, limit: &str) {
        assert!(!e.allow);
        assert!(
            e.reasons
                .iter()
                .any(|r| r.code == codes::LIMIT_UNKNOWN && r.limit.as_deref() == Some(limit)),
            "{limit}: {e:#?}"
        );
    }

    #[test]
    fn unknown_flat_keys_apply_to_the_action_they_name() {
        let p = with_limit("refund_usd_weekly_cap", json!(5000));
        assert_unknown(&refund_ok(&p), "limits.refund_usd_weekly_cap");
        assert_allowed(&export_ok(&p));
        let p = with_limit("max_export_bytes", json!(1));
        assert_unknown(&export_ok(&p), "limits.max_export_bytes");
        assert_allowed(&refund_ok(&p));
        // A malformed currency makes the key unknown, not ignored.
        let p = with_limit("refund_us_max_per_tx", json!(1));
        assert_unknown(&refund_ok(&p), "limits.refund_us_max_per_tx");
    }

    #[test]
    fn unknown_flat_keys_that_name_no_held_action_apply_to_every_capability() {
        for key in ["velocity", "max_rows", "charge_usd_weekly_cap", "regions"] {
            let p = with_limit(key, json!(1));
            let path = format!("limits.{key}");
            assert_unknown(&refund_ok(&p), &path);
            assert_unknown(&export_ok(&p), &path);
        }
        // A known key for an action the passport does not hold is simply not applicable.
        let p = with_limit("charge_usd_max_per_tx", json!(1));
        assert_allowed(&refund_ok(&p));
        assert_allowed(&export_ok(&p));
    }

    #[test]
    fn oap_layout_aliases_and_flags() {
        let refund = |limits: Value, amount: Value| {
            ask(
                &seed_with_limits(json!({ "payments.refund": limits })),
                "payments.refund",
                json!({"amount": amount, "currency": "USD", "region": "US-CA", "reason_code": "dup"}),
            )
        };
        // `max_daily_amount` is a daily cap; `refund_reason_codes` the reason codes.
        let e = refund(
            json!({"currency_limits": {"USD": {"max_daily_amount": 100}}}),
            json!(1.01),
        );
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert!(limits_of(&e)[0].ends_with("max_daily_amount"));
        let e = refund(json!({"refund_reason_codes": ["fraud"]}), json!(1));
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert_allowed(&refund(
            json!({"refund_reason_codes": ["dup"], "idempotency_required": true}),
            json!(1),
        ));
        // `require_assurance_at_least` is a minimum assurance.
        let e = refund(json!({"require_assurance_at_least": "L3"}), json!(1));
        assert_eq!(codes_of(&e), [codes::ASSURANCE_INSUFFICIENT]);
        // `supported_currencies` alone asks for a listed currency.
        assert_allowed(&refund(json!({"supported_currencies": ["USD"]}), json!(1)));
        let e = ask(
            &seed_with_limits(json!({ "payments.refund": {"supported_currencies": ["EUR"]} })),
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
        );
        assert_eq!(codes_of(&e), [codes::CURRENCY_UNSUPPORTED]);
        // The capability's `currency` param says USD, the list only EUR: nothing is usable.
        assert!(e.reasons[0].message.ends_with("none"), "{e:?}");
        // Approval needed: an automated decision never allows.
        let e = refund(json!({"approval_required": true}), json!(1));
        assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED]);
        assert_allowed(&refund(json!({"approval_required": false}), json!(1)));
        // Malformed flags are policy errors.
        let e = refund(json!({"idempotency_required": "yes"}), json!(1));
        assert_eq!(codes_of(&e), [codes::POLICY_ERROR]);
        // Export rows under APort's names.
        for key in ["max_export_rows", "max_rows_per_export"] {
            let p = seed_with_limits(json!({ "data.export": { key: 10 } }));
            let e = ask(&p, "data.export", json!({"rows": 11, "region": "US-NY"}));
            assert_eq!(codes_of(&e), [codes::LIMIT_EXCEEDED], "{key}");
        }
    }

    #[test]
    fn pack_only_limits_deny_native_decisions() {
        let p = seed_with_limits(json!({ "payments.refund": { "allowed_merchant_ids": ["m1"] } }));
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
        );
        assert_eq!(codes_of(&e), [codes::INVALID_CONTEXT]);
        assert!(
            e.reasons[0].message.contains("finance.payment.charge.v1"),
            "{e:?}"
        );
        // One no pack enforces says so.
        let p = seed_with_limits(json!({ "payments.refund": { "msgs_per_day": 5 } }));
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
        );
        assert!(
            e.reasons[0].message.contains("no built-in policy pack"),
            "{e:?}"
        );
        // An empty allowlist restricts nothing; a malformed one is a policy error.
        let p = seed_with_limits(json!({ "payments.refund": { "allowed_merchant_ids": [] } }));
        assert_allowed(&ask(
            &p,
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
        ));
        let p = seed_with_limits(json!({ "payments.refund": { "max_items_per_tx": -1 } }));
        let e = ask(
            &p,
            "payments.refund",
            json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
        );
        assert_eq!(codes_of(&e), [codes::POLICY_ERROR]);
        // Every pack-only key is known to the vocabulary: none is `limit_unknown`.
        for (key, _) in PACK_ONLY_KEYS {
            let p = seed_with_limits(json!({ "payments.refund": { key: 1 } }));
            let e = ask(
                &p,
                "payments.refund",
                json!({"amount": 1, "currency": "USD", "region": "US-CA"}),
            );
            assert!(!e.has(codes::LIMIT_UNKNOWN), "{key}");
            assert!(!e.allow, "{key}");
        }
    }

    #[test]
    fn unknown_keys_inside_the_capability_object_apply_to_it() {
        let p = with_limit("payments.refund", json!({"weekly_cap": 5}));
        assert_unknown(&refund_ok(&p), "limits.payments.refund.weekly_cap");
        assert_allowed(&export_ok(&p));
        let p = with_limit(
            "payments.refund",
            json!({"currency_limits": {"USD": {"max_per_tx": 100000, "weekly_cap": 1}}}),
        );
        let e = refund_ok(&p);
        assert_unknown(&e, "limits.payments.refund.currency_limits.USD.weekly_cap");
        assert_eq!(codes_of(&e), [codes::LIMIT_UNKNOWN]);
        assert!(e.reasons[0].message.contains("not treated as allowed"));
    }

    #[test]
    fn unknown_params_apply_to_their_capability() {
        let mut p = seed();
        p.capabilities[0]
            .params
            .insert("max_refunds_per_hour".into(), json!(3));
        assert_unknown(
            &refund_ok(&p),
            "capabilities[0].params.max_refunds_per_hour",
        );
        assert_allowed(&export_ok(&p));
    }

    #[test]
    fn objects_keyed_by_a_capability_not_held_are_unknown() {
        // OAP's own id for refunds, while the passport holds `payments.refund`.
        let p = with_limit(
            "finance.payment.refund",
            json!({"currency_limits": {"USD": {"max_per_tx": 1}}}),
        );
        assert_unknown(&refund_ok(&p), "limits.finance.payment.refund");
        assert_allowed(&export_ok(&p));
        // Limits left for a capability the passport no longer holds block everything.
        let mut p = plain_with_limits(json!({"data.export": {"max_rows": 10}}));
        p.capabilities
            .retain(|c| c.id.as_str() == "payments.refund");
        assert_unknown(&refund_ok(&p), "limits.data.export");
        // Limits for another held capability do not concern this one.
        let p = plain_with_limits(json!({"data.export": {"max_rows": 0}}));
        assert_allowed(&refund_ok(&p));
    }

    #[test]
    fn malformed_known_limits_are_policy_errors() {
        let cases = [
            (
                json!({"refund_usd_max_per_tx": -5}),
                "limits.refund_usd_max_per_tx",
            ),
            (
                json!({"refund_usd_max_per_tx": "lots"}),
                "limits.refund_usd_max_per_tx",
            ),
            (
                json!({"refund_usd_max_per_tx": 1.005}),
                "limits.refund_usd_max_per_tx",
            ),
            (
                json!({"refund_usd_daily_cap": null}),
                "limits.refund_usd_daily_cap",
            ),
            (json!({"allow_pii": "no"}), "limits.allow_pii"),
            (json!({"max_refund_rows": -1}), "limits.max_refund_rows"),
            (
                json!({"payments.refund": {"currency_limits": {"USD": {"max_per_tx": 100.5}}}}),
                "limits.payments.refund.currency_limits.USD.max_per_tx",
            ),
            (
                json!({"payments.refund": {"currency_limits": {"usd": {"max_per_tx": 100}}}}),
                "limits.payments.refund.currency_limits.usd",
            ),
            (
                json!({"payments.refund": {"currency_limits": [1]}}),
                "limits.payments.refund.currency_limits",
            ),
            (
                json!({"payments.refund": {"min_assurance": "L9"}}),
                "limits.payments.refund.min_assurance",
            ),
            (
                json!({"payments.refund": {"reason_codes": "customer_request"}}),
                "limits.payments.refund.reason_codes",
            ),
        ];
        for (limits, path) in cases {
            let p = plain_with_limits(limits.clone());
            let e = refund_ok(&p);
            assert!(!e.allow, "{limits}");
            assert!(
                e.reasons
                    .iter()
                    .any(|r| r.code == codes::POLICY_ERROR && r.limit.as_deref() == Some(path)),
                "{limits}: {e:#?}"
            );
        }
        // `allow_pii` is global: a malformed one blocks every capability.
        assert!(!export_ok(&seed_with_limits(json!({"allow_pii": 0}))).allow);
        // Params: `max_amount` needs a currency; the currency must be a code.
        let mut p = seed_with_limits(json!({}));
        p.capabilities[0].params.remove("currency");
        let e = refund_ok(&p);
        assert_eq!(
            limits_of(&e),
            ["capabilities[0].params.max_amount"],
            "{e:#?}"
        );
        assert_eq!(codes_of(&e), [codes::POLICY_ERROR]);
        p.capabilities[0]
            .params
            .insert("currency".into(), json!("dollars"));
        let e = refund_ok(&p);
        assert_eq!(codes_of(&e), [codes::POLICY_ERROR]);
        assert_eq!(limits_of(&e), ["capabilities[0].params.currency"]);
    }

    // --- Reading requests --------------------------------------------------------------------

    #[test]
    fn context_from_json() {
        let err = Context::from_json(json!({"amount": 1, "colour": "red"})).unwrap_err();
        assert_eq!(err.code, codes::INVALID_CONTEXT);
        assert_eq!(err.field.as_deref(), Some("context.colour"));
        let err = Context::from_json(json!({"amount": "50"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("context.amount"));
        let err = Context::from_json(json!({"pii": "yes"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("context.pii"));
        assert!(Context::from_json(json!([1])).is_err());
        assert_eq!(Context::from_json(Value::Null).unwrap(), Context::default());
        let ctx = Context::from_json(json!({"amount": 250, "currency": "USD", "region": "US-CA",
            "rows": 5000, "pii": true, "collection": "orders", "reason_code": "customer_request"}))
        .unwrap();
        assert_eq!(ctx.rows.as_ref().and_then(Number::as_u64), Some(5000));
        // Round trip, omitting what is absent.
        let v = serde_json::to_value(Context {
            region: Some("US".into()),
            ..Context::default()
        })
        .unwrap();
        assert_eq!(v, json!({"region": "US"}));
        assert!(serde_json::from_value::<DecisionRequest>(
            json!({"capability": "a", "context": {}, "commit": true})
        )
        .is_err());
        let req: DecisionRequest = serde_json::from_value(json!({"capability": "a"})).unwrap();
        assert_eq!(req.context, Context::default());
    }

    #[test]
    fn an_unreadable_context_still_lists_the_other_failures() {
        let reason = Context::from_json(json!({"colour": "red"})).unwrap_err();
        let mut p = seed();
        p.status = Status::Revoked;
        let e = decide_unreadable_context(&p, "payments.charge", reason.clone());
        assert_eq!(
            codes_of(&e),
            [
                codes::PASSPORT_SUSPENDED,
                codes::UNKNOWN_CAPABILITY,
                codes::INVALID_CONTEXT
            ]
        );
        let e = decide_unreadable_context(&seed(), "payments.refund", reason);
        assert_eq!(codes_of(&e), [codes::INVALID_CONTEXT]);
        assert!(!e.allow);
    }

    #[test]
    fn evaluation_serializes_without_empty_members() {
        let e = refund_ok(&seed());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["reasons"][0].as_object().unwrap().len(), 2);
        let back: Evaluation = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert!(e.has(codes::ALLOWED));
    }

    #[test]
    fn flat_key_shapes() {
        let usd = Ccy([b'U', b'S', b'D']);
        assert_eq!(
            parse_flat("refund_usd_max_per_tx"),
            FlatKey::MaxPerTx {
                action: "refund",
                ccy: usd
            }
        );
        assert_eq!(
            parse_flat("bulk_refund_usd_daily_cap"),
            FlatKey::DailyCap {
                action: "bulk_refund",
                ccy: usd
            }
        );
        assert_eq!(
            parse_flat("max_export_rows"),
            FlatKey::MaxRows { action: "export" }
        );
        assert_eq!(parse_flat("allow_pii"), FlatKey::AllowPii);
        for unknown in [
            "usd_max_per_tx",
            "_usd_max_per_tx",
            "refund_USD_max_per_tx",
            "refund_dollar_max_per_tx",
            "max_rows",
            "max__rows",
            "allow_pii_export",
            "",
        ] {
            assert_eq!(parse_flat(unknown), FlatKey::Unknown, "{unknown}");
        }
        assert!(names_action("refund_usd_weekly_cap", "refund"));
        assert!(names_action("finance.payment.refund", "refund"));
        assert!(names_action("max_bulk_export_bytes", "bulk_export"));
        assert!(!names_action("max_export_bytes", "bulk_export"));
        assert!(!names_action("refunds_total", "refund"));
        assert_eq!(action_of("payments.refund"), "refund");
        assert_eq!(action_of("export"), "export");
    }

    // --- Properties --------------------------------------------------------------------------

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::subsequence;

        const HELD_ACTIONS: [&str; 3] = ["refund", "export", "send"];

        fn cents(c: u64) -> Value {
            if c % 100 == 0 {
                json!(c / 100)
            } else {
                json!(c as f64 / 100.0)
            }
        }

        fn arb_status() -> impl Strategy<Value = Status> {
            prop_oneof![
                6 => Just(Status::Active),
                1 => Just(Status::Suspended),
                1 => Just(Status::Draft),
                1 => Just(Status::Revoked),
            ]
        }

        fn arb_level() -> impl Strategy<Value = AssuranceLevel> {
            prop_oneof![
                Just(AssuranceLevel::L0),
                Just(AssuranceLevel::L1),
                Just(AssuranceLevel::L2),
                Just(AssuranceLevel::L3),
            ]
        }

        /// A limit key (top-level, or inside a capability object) and its value.
        #[derive(Clone, Debug)]
        enum Entry {
            Top(&'static str, Value),
            Inner(&'static str, &'static str, Value),
        }

        fn arb_entry() -> impl Strategy<Value = Entry> {
            let amount = (0u64..60_000).prop_map(cents);
            let minor = 0u64..200_000;
            prop_oneof![
                amount
                    .clone()
                    .prop_map(|v| Entry::Top("refund_usd_max_per_tx", v)),
                amount
                    .clone()
                    .prop_map(|v| Entry::Top("refund_usd_daily_cap", v)),
                amount
                    .clone()
                    .prop_map(|v| Entry::Top("refund_eur_max_per_tx", v)),
                amount.prop_map(|v| Entry::Top("refund_jpy_daily_cap", v)),
                (0u64..3000).prop_map(|n| Entry::Top("max_export_rows", json!(n))),
                (0u64..3000).prop_map(|n| Entry::Top("max_send_rows", json!(n))),
                any::<bool>().prop_map(|b| Entry::Top("allow_pii", json!(b))),
                (
                    minor.clone(),
                    minor.clone(),
                    prop::sample::select(vec!["USD", "EUR", "JPY"])
                )
                    .prop_map(|(tx, cap, ccy)| Entry::Inner(
                        "payments.refund",
                        "currency_limits",
                        json!({ ccy: {"max_per_tx": tx, "daily_cap": cap} })
                    )),
                Just(Entry::Inner(
                    "payments.refund",
                    "reason_codes",
                    json!(["customer_request"])
                )),
                arb_level().prop_map(|l| Entry::Inner(
                    "payments.refund",
                    "min_assurance",
                    json!(l)
                )),
                (0u64..3000).prop_map(|n| Entry::Inner("data.export", "max_rows", json!(n))),
                any::<bool>().prop_map(|b| Entry::Inner("data.export", "allow_pii", json!(b))),
                Just(Entry::Inner(
                    "data.export",
                    "allowed_collections",
                    json!(["orders"])
                )),
            ]
        }

        /// Adds the entry when its key is absent; returns whether it did.
        fn add(p: &mut EdgePassport, entry: &Entry) -> bool {
            match entry {
                Entry::Top(key, value) => {
                    if p.limits.contains_key(*key) {
                        return false;
                    }
                    p.limits.insert((*key).to_owned(), value.clone());
                    true
                }
                Entry::Inner(cap, key, value) => {
                    let object = p
                        .limits
                        .entry((*cap).to_owned())
                        .or_insert_with(|| json!({}));
                    match object.as_object_mut() {
                        Some(o) if !o.contains_key(*key) => {
                            o.insert((*key).to_owned(), value.clone());
                            true
                        }
                        _ => false,
                    }
                }
            }
        }

        prop_compose! {
            fn arb_passport()(
                status in arb_status(),
                regions in subsequence(vec!["US-NY", "US-CA", "US", "GB", "*"], 0..=3),
                level in arb_level(),
                refund in 0u8..3,
                refund_max in (0u64..40_000).prop_map(cents),
                export in 0u8..3,
                export_max in 0u64..3000,
                send in any::<bool>(),
                entries in prop::collection::vec(arb_entry(), 0..6),
            ) -> EdgePassport {
                let mut p = seed();
                p.status = status;
                p.regions = regions.iter().map(|r| crate::Region::parse(r).unwrap()).collect();
                p.assurance_level = level;
                p.limits.clear();
                let mut caps = Vec::new();
                let cap = |id: &str, params: Value| Capability {
                    id: crate::CapabilityId::parse(id).unwrap(),
                    params: params.as_object().unwrap().clone(),
                };
                match refund {
                    1 => caps.push(cap("payments.refund", json!({}))),
                    2 => caps.push(cap("payments.refund", json!({"max_amount": refund_max, "currency": "USD"}))),
                    _ => {}
                }
                match export {
                    1 => caps.push(cap("data.export", json!({}))),
                    2 => caps.push(cap("data.export", json!({"max_rows": export_max}))),
                    _ => {}
                }
                if send {
                    caps.push(cap("messaging.send", json!({})));
                }
                p.capabilities = caps;
                for e in &entries {
                    add(&mut p, e);
                }
                // Capability objects for capabilities not held would be unknown keys; keep the
                // generated passports free of them (the unknown-key property adds its own).
                let held: Vec<String> = p.capabilities.iter().map(|c| c.id.as_str().to_owned()).collect();
                p.limits.retain(|k, v| !v.is_object() || held.contains(k));
                p
            }
        }

        prop_compose! {
            fn arb_request()(
                capability in prop::sample::select(vec!["payments.refund", "data.export", "messaging.send", "payments.charge"]),
                amount in prop::option::of(0u64..80_000),
                currency in prop::option::of(prop::sample::select(vec!["USD", "EUR", "JPY"])),
                region in prop::option::of(prop::sample::select(vec!["US-CA", "US-NY", "US-TX", "US", "GB"])),
                rows in prop::option::of(0u64..3000),
                pii in prop::option::of(any::<bool>()),
                collection in prop::option::of(prop::sample::select(vec!["orders", "users"])),
                reason_code in prop::option::of(prop::sample::select(vec!["customer_request", "fraud"])),
                min_assurance in prop::option::of(arb_level()),
            ) -> DecisionRequest {
                let mut ctx = Map::new();
                if let Some(a) = amount { ctx.insert("amount".into(), cents(a)); }
                if let Some(c) = currency { ctx.insert("currency".into(), json!(c)); }
                if let Some(r) = region { ctx.insert("region".into(), json!(r)); }
                if let Some(r) = rows { ctx.insert("rows".into(), json!(r)); }
                if let Some(b) = pii { ctx.insert("pii".into(), json!(b)); }
                if let Some(c) = collection { ctx.insert("collection".into(), json!(c)); }
                if let Some(r) = reason_code { ctx.insert("reason_code".into(), json!(r)); }
                DecisionRequest {
                    capability: capability.to_owned(),
                    context: Context::from_json(Value::Object(ctx)).unwrap(),
                    min_assurance,
                }
            }
        }

        fn arb_spent() -> impl Strategy<Value = SpentToday> {
            prop::option::of(0u64..200_000).prop_map(|s| {
                s.map(|usd| SpentToday::from([("USD".to_owned(), usd)]))
                    .unwrap_or_default()
            })
        }

        /// A word that is no limit key the vocabulary knows and names no held action.
        fn arb_unknown_word() -> impl Strategy<Value = String> {
            "[a-z]{2,7}(_[a-z]{2,7}){0,2}".prop_filter("a known or action-naming key", |k| {
                parse_flat(k) == FlatKey::Unknown
                    && ![
                        "currency_limits",
                        "max_rows",
                        "allow_pii",
                        "allowed_collections",
                        "reason_codes",
                        "min_assurance",
                        "max_amount",
                        "currency",
                        "max_per_tx",
                        "daily_cap",
                    ]
                    .contains(&k.as_str())
                    && !HELD_ACTIONS.iter().any(|a| names_action(k, a))
            })
        }

        fn structure_holds(e: &Evaluation) -> bool {
            if e.allow {
                e.codes() == [codes::ALLOWED]
            } else {
                !e.reasons.is_empty() && !e.has(codes::ALLOWED)
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// An allow carries exactly `oap.allowed`; a denial at least one reason and never it.
            #[test]
            fn allow_and_reasons_agree(p in arb_passport(), r in arb_request(), s in arb_spent()) {
                let e = decide_with_spent(&p, &r, &s);
                prop_assert!(structure_holds(&e), "{:#?}", e);
            }

            /// A limit only narrows: if a passport with one more limit key allows a request, the
            /// passport without it allows it too — except that an amount limit in a new currency
            /// is how a passport opens that currency, so the only denial a new key can lift is
            /// `oap.currency_unsupported`.
            #[test]
            fn adding_a_limit_key_never_lifts_another_denial(
                p in arb_passport(), r in arb_request(), s in arb_spent(), extra in arb_entry()
            ) {
                let mut more = p.clone();
                prop_assume!(add(&mut more, &extra));
                let before = decide_with_spent(&p, &r, &s);
                let after = decide_with_spent(&more, &r, &s);
                if after.allow && !before.allow {
                    prop_assert_eq!(before.codes(), vec![codes::CURRENCY_UNSUPPORTED], "{:?}", extra);
                }
                // And no failed check of before is forgotten, bar that one code. (Messages may
                // differ: they list every limit involved.)
                let key = |r: &Reason| (r.code.clone(), r.limit.clone(), r.field.clone());
                let kept: Vec<_> = after.reasons.iter().map(key).collect();
                for reason in &before.reasons {
                    if reason.code != codes::CURRENCY_UNSUPPORTED && reason.code != codes::ALLOWED {
                        prop_assert!(kept.contains(&key(reason)), "{:?} lost {:?}", extra, reason);
                    }
                }
            }

            /// Asking for more never helps: a larger amount (same currency, whole units more), more
            /// rows, more spent today, `pii: true`, or a higher required assurance keep a denial a
            /// denial.
            #[test]
            fn asking_for_more_never_turns_a_denial_into_an_allow(
                p in arb_passport(), r in arb_request(), s in arb_spent(),
                more_amount in 0u64..500, more_rows in 0u64..2000, more_spent in 0u64..100_000,
                pii in any::<bool>(), stricter in prop::option::of(arb_level()),
            ) {
                let before = decide_with_spent(&p, &r, &s);
                prop_assume!(!before.allow);
                let mut r2 = r.clone();
                if let Some(a) = &r.context.amount {
                    let bumped = match a.as_u64() {
                        Some(major) => json!(major + more_amount),
                        None => json!(a.as_f64().unwrap() + more_amount as f64),
                    };
                    r2.context.amount = bumped.as_number().cloned();
                }
                if let Some(rows) = r.context.rows.as_ref().and_then(Number::as_u64) {
                    r2.context.rows = Some(Number::from(rows + more_rows));
                }
                if pii {
                    r2.context.pii = Some(true);
                }
                if let Some(level) = stricter {
                    r2.min_assurance = Some(r.min_assurance.map_or(level, |l| l.max(level)));
                }
                let mut s2 = s.clone();
                *s2.entry("USD".into()).or_insert(0) += more_spent;
                let after = decide_with_spent(&p, &r2, &s2);
                prop_assert!(!after.allow, "{:#?}\n{:#?}", r2, after);
            }

            /// An unknown limit key never allows silently: placed where it applies to the
            /// requested (held) capability, the decision denies with `limit_unknown` naming it.
            #[test]
            fn an_unknown_limit_key_never_allows_silently(
                p in arb_passport(), r in arb_request(), s in arb_spent(),
                word in arb_unknown_word(), place in 0u8..5, value in prop::sample::select(vec![json!(1), json!(true), json!("x"), json!([]), json!(null)]),
            ) {
                let held = p.capabilities.iter().position(|c| c.id.as_str() == r.capability);
                prop_assume!(held.is_some());
                let index = held.unwrap_or(0);
                let id = r.capability.clone();
                let action = action_of(&id).to_owned();
                let mut q = p.clone();
                let path = match place {
                    // Inside the capability's OAP object.
                    0 => {
                        let o = q.limits.entry(id.clone()).or_insert_with(|| json!({}));
                        o.as_object_mut().unwrap().insert(word.clone(), value);
                        format!("limits.{id}.{word}")
                    }
                    // In the capability's params.
                    1 => {
                        q.capabilities[index].params.insert(word.clone(), value);
                        format!("capabilities[{index}].params.{word}")
                    }
                    // A flat key naming the action.
                    2 => {
                        let key = format!("{action}_{word}");
                        prop_assume!(parse_flat(&key) == FlatKey::Unknown && !q.limits.contains_key(&key));
                        q.limits.insert(key.clone(), value);
                        format!("limits.{key}")
                    }
                    // A flat key naming no held action.
                    3 => {
                        prop_assume!(!q.limits.contains_key(&word));
                        q.limits.insert(word.clone(), value);
                        format!("limits.{word}")
                    }
                    // An object keyed by a capability the passport does not hold.
                    _ => {
                        let key = format!("acme.{word}");
                        q.limits.insert(key.clone(), json!({"max_rows": 1}));
                        format!("limits.{key}")
                    }
                };
                let e = decide_with_spent(&q, &r, &s);
                prop_assert!(!e.allow);
                prop_assert!(
                    e.reasons.iter().any(|x| x.code == codes::LIMIT_UNKNOWN && x.limit.as_deref() == Some(path.as_str())),
                    "{}: {:#?}", path, e
                );
            }

            /// An unknown flat key that names only another held capability's action does not
            /// change this capability's decisions.
            #[test]
            fn unknown_keys_naming_another_action_stay_with_it(
                p in arb_passport(), r in arb_request(), word in arb_unknown_word(),
            ) {
                let action = action_of(&r.capability).to_owned();
                let other = p.capabilities.iter()
                    .map(|c| action_of(c.id.as_str()).to_owned())
                    .find(|a| *a != action);
                prop_assume!(other.is_some());
                let key = format!("{}_{word}", other.unwrap_or_default());
                prop_assume!(!names_action(&key, &action) && parse_flat(&key) == FlatKey::Unknown);
                let mut q = p.clone();
                q.limits.insert(key, json!(1));
                prop_assert_eq!(decide(&q, &r), decide(&p, &r));
            }

            /// A denial lists every failed check: suspending the passport adds exactly
            /// `oap.passport_suspended` in front of whatever else fails.
            #[test]
            fn status_failure_is_listed_with_all_the_others(
                p in arb_passport(), r in arb_request(), s in arb_spent(),
                status in prop::sample::select(vec![Status::Suspended, Status::Draft, Status::Revoked]),
            ) {
                let mut active = p.clone();
                active.status = Status::Active;
                let mut inactive = p;
                inactive.status = status;
                let a = decide_with_spent(&active, &r, &s);
                let i = decide_with_spent(&inactive, &r, &s);
                prop_assert!(!i.allow);
                prop_assert_eq!(&i.reasons[0].code, codes::PASSPORT_SUSPENDED);
                let rest: Vec<Reason> = if a.allow { vec![] } else { a.reasons.clone() };
                prop_assert_eq!(&i.reasons[1..], rest.as_slice());
                prop_assert_eq!(i.spend, a.spend);
            }

            /// Arbitrary JSON in `limits` and params never panics, and an allow is still an allow.
            #[test]
            fn arbitrary_limits_never_panic(
                p in arb_passport(), r in arb_request(),
                limits in prop::collection::btree_map(
                    prop::sample::select(vec![
                        "payments.refund", "data.export", "allow_pii", "refund_usd_max_per_tx",
                        "refund_usd_daily_cap", "max_export_rows", "misc", "refund_x", "a.b",
                    ]),
                    arb_json(),
                    0..5,
                ),
                params in prop::collection::btree_map(
                    prop::sample::select(vec!["max_amount", "currency", "max_rows"]),
                    arb_json(),
                    0..3,
                ),
            ) {
                let mut q = p;
                for (k, v) in limits {
                    q.limits.insert(k.to_owned(), v);
                }
                if let Some(c) = q.capabilities.first_mut() {
                    for (k, v) in params {
                        c.params.insert(k.to_owned(), v);
                    }
                }
                let e = decide(&q, &r);
                prop_assert!(structure_holds(&e));
            }
        }

        fn arb_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|f| json!(f)),
                (0u64..100_000).prop_map(|n| json!(n)),
                prop::sample::select(vec!["USD", "usd", "L2", "orders", ""]).prop_map(|s| json!(s)),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop::sample::select(vec![
                            "currency_limits",
                            "USD",
                            "EUR",
                            "max_per_tx",
                            "daily_cap",
                            "max_rows",
                            "allow_pii",
                            "allowed_collections",
                            "reason_codes",
                            "min_assurance",
                            "zz",
                        ]),
                        inner,
                        0..4,
                    )
                    .prop_map(|m| Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                    )),
                ]
            })
        }
    }
}
