//! Evaluating a pack: the context against its field specs, the passport through the decision
//! vocabulary of SPEC §11, then the pack's own checks; every reason put in the pack's order.

use serde_json::{Map, Number, Value};

use super::{
    CapabilityRule, CheckKind, CheckSpec, FieldSpec, FieldType, Generic, NativeField, Pack, When,
};
use crate::edge_view::EdgePassport;
use crate::passport::AssuranceLevel;
use crate::policy::{self, codes, Check, Context, DecisionRequest, Found, Reason, Spend};
use crate::validate;

/// A pack's answer: `allow`, the reasons in the pack's order, and what a commit would record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackEvaluation {
    pub allow: bool,
    pub reasons: Vec<Reason>,
    /// The capability the pack decided.
    pub capability: String,
    /// The amount and the daily caps it counts against, when it has one (see
    /// [`crate::policy::Evaluation::spend`]).
    pub spend: Option<Spend>,
}

impl PackEvaluation {
    /// The reason codes, in order.
    pub fn codes(&self) -> Vec<&str> {
        self.reasons.iter().map(|r| r.code.as_str()).collect()
    }
}

/// Where a reason sits in the pack's order.
enum Origin {
    Vocabulary(Check),
    Spec(usize),
}

/// Evaluates `context` (the request's action fields, OAP units) for `passport` under `pack`.
/// `spent` is what the agent committed today per currency (see
/// [`crate::policy::decide_with_spent`]); `idempotency_key` whether the request carries one.
pub fn evaluate(
    pack: &Pack,
    passport: &EdgePassport,
    context: &Map<String, Value>,
    spent: &policy::SpentToday,
    idempotency_key: Option<&str>,
) -> PackEvaluation {
    let mut found: Vec<(Origin, Reason)> = Vec::new();

    // 1. The context against the pack's fields.
    let mut bad_fields: Vec<String> = Vec::new();
    for (name, spec) in &pack.context {
        let path = format!("context.{name}");
        let problem = match context.get(name) {
            None | Some(Value::Null) if spec.required => Some(format!("`{name}` is required")),
            None | Some(Value::Null) => None,
            Some(value) => check_value(name, spec, value),
        };
        if let Some(message) = problem {
            found.push((
                Origin::Vocabulary(Check::Context),
                Reason::new(codes::INVALID_CONTEXT, message).field(&path),
            ));
            bad_fields.push(path);
        }
    }
    let valid = |name: &str| -> Option<&Value> {
        let value = context.get(name).filter(|v| !v.is_null())?;
        (!bad_fields.contains(&format!("context.{name}"))).then_some(value)
    };

    // 2. The native decision over the fields the pack maps to it.
    let mut native = Context::default();
    let mut renames: Vec<(String, String)> = Vec::new();
    for (name, spec) in &pack.context {
        let (Some(as_), Some(value)) = (spec.native, valid(name)) else {
            continue;
        };
        let native_name = match as_ {
            NativeField::Amount => {
                native.amount_minor = value.as_u64();
                native.amount = value.as_u64().map(Number::from);
                "amount"
            }
            NativeField::Currency => {
                native.currency = value.as_str().map(str::to_owned);
                "currency"
            }
            NativeField::Region => {
                native.region = value.as_str().map(str::to_owned);
                "region"
            }
            NativeField::Rows => {
                native.rows = value.as_u64().map(Number::from);
                "rows"
            }
            NativeField::Pii => {
                native.pii = value.as_bool();
                "pii"
            }
            NativeField::Collection => {
                native.collection = value.as_str().map(str::to_owned);
                "collection"
            }
            NativeField::ReasonCode => {
                native.reason_code = value.as_str().map(str::to_owned);
                "reason_code"
            }
        };
        renames.push((format!("context.{native_name}"), format!("context.{name}")));
    }
    // A native field the pack maps but the request lacks keeps the pack's name in reasons.
    for (name, spec) in &pack.context {
        if let Some(as_) = spec.native {
            let native_name = native_name(as_);
            if !renames.iter().any(|(n, _)| n == native_name) {
                renames.push((native_name.to_owned(), format!("context.{name}")));
            }
        }
    }
    let picked = pick_capability(pack, passport, context);
    // No capability for the context's value: the field check says so, not a capability check.
    let unpicked = picked.is_none();
    let capability = picked.unwrap_or_else(|| format!("{}.none", pack.id));
    let request = DecisionRequest {
        capability: capability.clone(),
        context: native,
        min_assurance: None,
    };
    let enforced = pack.enforced_keys();
    let (Found(native_found), spend) = policy::run_checks(passport, &request, spent, &enforced);
    for (check, mut reason) in native_found {
        if let Some(field) = reason.field.as_deref() {
            if let Some((_, ours)) = renames.iter().find(|(n, _)| n == field) {
                reason.field = Some(ours.clone());
            }
        }
        // The pack's own field check said it already.
        let said = reason.code == codes::INVALID_CONTEXT
            && reason
                .field
                .as_ref()
                .is_some_and(|f| bad_fields.contains(f));
        let unasked = unpicked && check == Check::Capability;
        if !said && !unasked {
            found.push((Origin::Vocabulary(check), reason));
        }
    }

    // 3. The pack's minimum assurance.
    let amount = pack
        .context
        .iter()
        .find(|(_, s)| s.native == Some(NativeField::Amount))
        .and_then(|(name, _)| valid(name))
        .and_then(Value::as_u64);
    if let Some(level) = required_level(pack, amount) {
        if passport.assurance_level < level {
            let why = match amount {
                Some(minor) if pack.assurance.len() > 1 => {
                    format!(" for an amount of {minor} minor units")
                }
                _ => String::new(),
            };
            found.push((
                Origin::Vocabulary(Check::Assurance),
                Reason::new(
                    codes::ASSURANCE_INSUFFICIENT,
                    format!(
                        "`{}` requires assurance {level:?} or higher{why}; the passport has {:?}",
                        pack.id, passport.assurance_level
                    ),
                )
                .limit("assurance_level"),
            ));
        }
    }

    // 4. The pack's own checks.
    let limits = passport.limits.get(&capability).and_then(Value::as_object);
    for (index, spec) in pack.checks.iter().enumerate() {
        // The vocabulary's checks ran in the native decision.
        let CheckKind::Generic(generic) = spec.check else {
            continue;
        };
        if !applies(spec.when.as_ref(), context) {
            continue;
        }
        for reason in run_spec(
            generic,
            spec,
            context,
            &bad_fields,
            limits,
            &capability,
            idempotency_key,
        ) {
            found.push((Origin::Spec(index), reason));
        }
    }

    // 5. The pack's order, and its deny codes.
    let position = |from: &Origin| match from {
        Origin::Spec(i) => *i,
        Origin::Vocabulary(check) => pack
            .checks
            .iter()
            .position(|c| c.check.vocabulary() == Some(*check))
            .unwrap_or(pack.checks.len()),
    };
    found.sort_by_key(|(from, _)| position(from));
    let reasons: Vec<Reason> = found
        .into_iter()
        .map(|(from, mut reason)| {
            let (default, spec) = match &from {
                Origin::Vocabulary(check) => (
                    check.code(),
                    pack.checks
                        .iter()
                        .find(|c| c.check.vocabulary() == Some(*check)),
                ),
                Origin::Spec(i) => (codes::LIMIT_EXCEEDED, pack.checks.get(*i)),
            };
            if let Some(code) = spec.and_then(|s| s.deny_code.as_deref()) {
                if reason.code == default {
                    code.clone_into(&mut reason.code);
                }
            }
            reason
        })
        .collect();
    let allow = reasons.is_empty();
    let reasons = if allow {
        vec![Reason::new(
            codes::ALLOWED,
            format!("`{}` allows it: every check passed", pack.id),
        )]
    } else {
        reasons
    };
    PackEvaluation {
        allow,
        reasons,
        capability,
        spend,
    }
}

fn native_name(field: NativeField) -> &'static str {
    match field {
        NativeField::Amount => "context.amount",
        NativeField::Currency => "context.currency",
        NativeField::Region => "context.region",
        NativeField::Rows => "context.rows",
        NativeField::Pii => "context.pii",
        NativeField::Collection => "context.collection",
        NativeField::ReasonCode => "context.reason_code",
    }
}

/// The capability the pack decides for this request.
fn pick_capability(
    pack: &Pack,
    passport: &EdgePassport,
    context: &Map<String, Value>,
) -> Option<String> {
    match &pack.capability {
        CapabilityRule::OneOf(ids) => ids
            .iter()
            .find(|id| passport.capabilities.iter().any(|c| c.id.as_str() == *id))
            .or(ids.first())
            .cloned(),
        CapabilityRule::ByField { field, map } => context
            .get(field)
            .and_then(Value::as_str)
            .and_then(|v| map.get(v))
            .cloned(),
    }
}

/// The pack's minimum assurance for `amount` (minor units), if it has one.
fn required_level(pack: &Pack, amount: Option<u64>) -> Option<AssuranceLevel> {
    match amount {
        Some(minor) => pack
            .assurance
            .iter()
            .find(|s| s.up_to_minor.is_none_or(|max| minor <= max))
            .map(|s| s.level),
        // Without an amount (the field check reported it), the highest step.
        None => pack.assurance.iter().map(|s| s.level).max(),
    }
}

fn applies(when: Option<&When>, context: &Map<String, Value>) -> bool {
    when.is_none_or(|w| {
        context
            .get(&w.field)
            .and_then(Value::as_str)
            .is_some_and(|v| w.one_of.iter().any(|x| x == v))
    })
}

/// Why `value` does not fit `spec` (`None`: it does).
fn check_value(name: &str, spec: &FieldSpec, value: &Value) -> Option<String> {
    let length_bounds = |n: usize, what: &str| -> Option<String> {
        let n = n as u64;
        if spec.min.is_some_and(|min| n < min) {
            return Some(format!(
                "`{name}` must have at least {} {what}",
                spec.min.unwrap_or_default()
            ));
        }
        if spec.max.is_some_and(|max| n > max) {
            return Some(format!(
                "`{name}` must have at most {} {what}",
                spec.max.unwrap_or_default()
            ));
        }
        None
    };
    match spec.kind {
        FieldType::String => {
            let Some(s) = value.as_str() else {
                return Some(format!("`{name}` must be a string"));
            };
            if !spec.one_of.is_empty() && !spec.one_of.iter().any(|v| v == s) {
                return Some(format!(
                    "`{name}` must be one of {}",
                    spec.one_of.join(", ")
                ));
            }
            length_bounds(s.chars().count(), "characters")
        }
        FieldType::Integer | FieldType::MinorUnits => {
            let Some(n) = value.as_u64() else {
                let unit = if spec.kind == FieldType::MinorUnits {
                    " in minor units (OAP: 5000 is 50.00 USD)"
                } else {
                    ""
                };
                return Some(format!("`{name}` must be a non-negative integer{unit}"));
            };
            if spec.min.is_some_and(|min| n < min) {
                return Some(format!(
                    "`{name}` must be at least {}",
                    spec.min.unwrap_or_default()
                ));
            }
            if spec.max.is_some_and(|max| n > max) {
                return Some(format!(
                    "`{name}` must be at most {}",
                    spec.max.unwrap_or_default()
                ));
            }
            None
        }
        FieldType::Number => {
            let Some(n) = value.as_f64() else {
                return Some(format!("`{name}` must be a number"));
            };
            if spec.min.is_some_and(|min| n < min as f64)
                || spec.max.is_some_and(|max| n > max as f64)
            {
                return Some(format!(
                    "`{name}` must be between {} and {}",
                    spec.min.unwrap_or_default(),
                    spec.max.map_or("any".to_owned(), |m| m.to_string())
                ));
            }
            None
        }
        FieldType::Boolean => {
            (!value.is_boolean()).then(|| format!("`{name}` must be true or false"))
        }
        FieldType::Currency => {
            let ok = value
                .as_str()
                .is_some_and(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()));
            (!ok).then(|| format!("`{name}` must be an ISO 4217 code in upper case (USD)"))
        }
        FieldType::Region => {
            let ok = value
                .as_str()
                .is_some_and(|s| s != "*" && validate::is_region(s));
            (!ok).then(|| {
                format!("`{name}` must be an ISO 3166-1 alpha-2 or ISO 3166-2 code (US, US-CA)")
            })
        }
        FieldType::Object => {
            let Some(object) = value.as_object() else {
                return Some(format!("`{name}` must be a JSON object"));
            };
            check_members(name, &spec.fields, object)
        }
        FieldType::StringList => {
            let Some(items) = value.as_array().filter(|a| a.iter().all(Value::is_string)) else {
                return Some(format!("`{name}` must be an array of strings"));
            };
            length_bounds(items.len(), "items")
        }
        FieldType::ObjectList => {
            let Some(items) = value.as_array() else {
                return Some(format!("`{name}` must be an array of objects"));
            };
            for (i, item) in items.iter().enumerate() {
                let Some(object) = item.as_object() else {
                    return Some(format!("`{name}[{i}]` must be a JSON object"));
                };
                if let Some(problem) = check_members(&format!("{name}[{i}]"), &spec.fields, object)
                {
                    return Some(problem);
                }
            }
            length_bounds(items.len(), "items")
        }
    }
}

fn check_members(
    name: &str,
    fields: &std::collections::BTreeMap<String, FieldSpec>,
    object: &Map<String, Value>,
) -> Option<String> {
    fields.iter().find_map(|(member, spec)| {
        let path = format!("{name}.{member}");
        match object.get(member) {
            None | Some(Value::Null) if spec.required => Some(format!("`{path}` is required")),
            None | Some(Value::Null) => None,
            Some(value) => check_value(&path, spec, value),
        }
    })
}

/// Every value at `path` in the context: `a.b` reads a member, `items[].category` every item's.
fn values_at<'c>(context: &'c Map<String, Value>, path: &str) -> Vec<&'c Value> {
    let mut current: Vec<&Value> = Vec::new();
    let mut first = true;
    for segment in path.split('.') {
        let (name, each) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment, false),
        };
        let next: Vec<&Value> = if first {
            context.get(name).into_iter().collect()
        } else {
            current.iter().filter_map(|v| v.get(name)).collect()
        };
        first = false;
        current = if each {
            next.iter().filter_map(|v| v.as_array()).flatten().collect()
        } else {
            next
        };
    }
    current.into_iter().filter(|v| !v.is_null()).collect()
}

/// The limit `template` under `limits["<capability>"]`, its `{field}`s filled from the context.
/// `Ok(None)`: the limit is not set (its first key is absent). `Err(path)`: the first key is set
/// but the rest of the path does not lead anywhere (a classification with no permissions).
fn limit_at<'l>(
    limits: Option<&'l Map<String, Value>>,
    template: &str,
    context: &Map<String, Value>,
) -> Result<Option<(&'l Value, String)>, String> {
    let mut segments = Vec::new();
    for segment in template.split('.') {
        let filled = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(field) => context
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_default(),
            None => segment.to_owned(),
        };
        segments.push(filled);
    }
    let path = segments.join(".");
    let Some(limits) = limits else {
        return Ok(None);
    };
    let mut iter = segments.iter();
    let Some(root) = iter.next().and_then(|first| limits.get(first.as_str())) else {
        return Ok(None);
    };
    let mut value = root;
    for segment in iter {
        match value.get(segment.as_str()) {
            Some(next) => value = next,
            None => return Err(path),
        }
    }
    Ok(Some((value, path)))
}

fn strings(value: &Value) -> Option<Vec<&str>> {
    value.as_array()?.iter().map(Value::as_str).collect()
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One generic check's reasons.
fn run_spec(
    generic: Generic,
    spec: &CheckSpec,
    context: &Map<String, Value>,
    bad_fields: &[String],
    limits: Option<&Map<String, Value>>,
    capability: &str,
    idempotency_key: Option<&str>,
) -> Vec<Reason> {
    let field = spec.field.as_deref().unwrap_or_default();
    let field_path = format!("context.{field}");
    let top = field.split(['.', '[']).next().unwrap_or_default();
    if bad_fields.contains(&format!("context.{top}")) {
        // Malformed: reported by the field check already.
        return Vec::new();
    }
    let exceeded = |message: String, limit: &str| {
        Reason::new(codes::LIMIT_EXCEEDED, message)
            .limit(format!("limits.{capability}.{limit}"))
            .field(&field_path)
    };
    let required = |limit: &str| {
        Reason::new(
            codes::INVALID_CONTEXT,
            format!("`{field}` is required: `limits.{capability}.{limit}` restricts it"),
        )
        .field(&field_path)
    };
    let malformed = |limit: &str, expected: &str| {
        Reason::new(
            codes::POLICY_ERROR,
            format!(
                "the limit `limits.{capability}.{limit}` cannot be read: it must be {expected}"
            ),
        )
        .limit(format!("limits.{capability}.{limit}"))
    };
    let template = spec.limit.as_deref().unwrap_or_default();
    match generic {
        Generic::Idempotency => {
            let needed = limits
                .and_then(|l| l.get("idempotency_required"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if needed && idempotency_key.is_none() {
                return vec![Reason::new(
                    codes::INVALID_CONTEXT,
                    format!(
                        "an idempotency key is required (`limits.{capability}.idempotency_required` is true): send the `Idempotency-Key` header or `idempotency_key`"
                    ),
                )
                .limit(format!("limits.{capability}.idempotency_required"))
                .field("context.idempotency_key")];
            }
            Vec::new()
        }
        Generic::InList | Generic::NoneInList | Generic::AllInList => {
            let list = match limit_at(limits, template, context) {
                Ok(None) => return Vec::new(),
                Ok(Some((value, path))) => match strings(value) {
                    Some(list) => (list, path),
                    None => return vec![malformed(&path, "an array of strings")],
                },
                Err(path) => {
                    return vec![exceeded(
                        format!(
                            "`limits.{capability}.{path}` is not set, so nothing is allowed there"
                        ),
                        &path,
                    )]
                }
            };
            let (list, path) = list;
            // A list field's items are its values.
            let values: Vec<&Value> = values_at(context, field)
                .into_iter()
                .flat_map(|v| match v {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                })
                .collect();
            if generic == Generic::NoneInList {
                return values
                    .iter()
                    .filter_map(|v| v.as_str())
                    .filter(|v| list.contains(v))
                    .map(|v| {
                        exceeded(
                            format!("`{v}` is blocked by `limits.{capability}.{path}`"),
                            &path,
                        )
                    })
                    .take(1)
                    .collect();
            }
            // An empty allowlist restricts nothing (APort's semantics).
            if list.is_empty() {
                return Vec::new();
            }
            if values.is_empty() {
                return vec![required(&path)];
            }
            let matches = |v: &str| {
                list.iter().any(|entry| match entry.strip_suffix('*') {
                    Some(prefix) if generic == Generic::AllInList => v.starts_with(prefix),
                    _ => *entry == v,
                })
            };
            values
                .iter()
                .map(|v| v.as_str().unwrap_or_default())
                .filter(|v| !matches(v))
                .map(|v| {
                    exceeded(
                        format!(
                            "`{v}` is not among the allowed values of `limits.{capability}.{path}`"
                        ),
                        &path,
                    )
                })
                .take(1)
                .collect()
        }
        Generic::AtMost => {
            let (limit, path) = match limit_at(limits, template, context) {
                Ok(None) => return Vec::new(),
                Ok(Some((value, path))) => match value.as_u64() {
                    Some(n) => (n, path),
                    None => return vec![malformed(&path, "a non-negative integer")],
                },
                Err(path) => return vec![malformed(&path, "set")],
            };
            let names: Vec<&str> = if spec.fields.is_empty() {
                vec![field]
            } else {
                spec.fields.iter().map(String::as_str).collect()
            };
            let mut total: u128 = 0;
            let mut present = false;
            for name in &names {
                for value in values_at(context, name) {
                    present = true;
                    total += if spec.count {
                        value.as_array().map_or(0, Vec::len) as u128
                    } else {
                        u128::from(value.as_u64().unwrap_or(0))
                    };
                }
            }
            if !present {
                return if spec.optional {
                    Vec::new()
                } else {
                    vec![required(&path)]
                };
            }
            let max = u128::from(limit) * u128::from(spec.scale.unwrap_or(1));
            let over = if spec.strict {
                total >= max
            } else {
                total > max
            };
            if !over {
                return Vec::new();
            }
            let what = if spec.count {
                format!("{total} items of `{field}`")
            } else {
                format!("{total} (`{}`)", names.join("` + `"))
            };
            let bound = if spec.strict { "below" } else { "at most" };
            let scaled = match spec.scale {
                Some(scale) => format!("{limit} × {scale}"),
                None => limit.to_string(),
            };
            vec![exceeded(
                format!("{what} must be {bound} {scaled} (`limits.{capability}.{path}`)"),
                &path,
            )]
        }
        Generic::SameValue => {
            let other = spec.other.as_deref().unwrap_or_default();
            match (context.get(field), context.get(other)) {
                (Some(a), Some(b)) if !a.is_null() && !b.is_null() && a != b => {
                    vec![Reason::new(
                        codes::LIMIT_EXCEEDED,
                        format!("`{field}` {} differs from `{other}` {}", show(a), show(b)),
                    )
                    .field(&field_path)]
                }
                _ => Vec::new(),
            }
        }
        Generic::OneOf => match context.get(field).and_then(Value::as_str) {
            Some(v) if !spec.values.iter().any(|x| x == v) => vec![Reason::new(
                codes::LIMIT_EXCEEDED,
                format!(
                    "`{field}` `{v}` is not supported; supported: {}",
                    spec.values.join(", ")
                ),
            )
            .field(&field_path)],
            _ => Vec::new(),
        },
    }
}
