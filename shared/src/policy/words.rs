//! A passport's capabilities and limits in words, for people (the public passport page, the
//! console). The words are read by the same code that decides ([`super::collect_limits`]), so a
//! page cannot promise less than a decision enforces: a limit the decision cannot read is said
//! to refuse every use, because it does.

use serde_json::Value;

use super::{collect_limits, Ccy};
use crate::edge_view::EdgePassport;
use crate::passport::{AssuranceLevel, Region, Tier};

/// One capability and what limits it, each limit a short phrase ("at most 100.00 USD per
/// transaction").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityInWords {
    pub id: String,
    pub limits: Vec<String>,
}

/// Every capability of `passport`, in its order, with its limits in words.
pub fn capabilities_in_words(passport: &EdgePassport) -> Vec<CapabilityInWords> {
    passport
        .capabilities
        .iter()
        .enumerate()
        .map(|(index, capability)| {
            let limits = collect_limits(passport, index, capability, &[]);
            let action = super::action_of(capability.id.as_str()).replace('_', " ");
            let mut words = Vec::new();
            for (_, ccy, minor) in &limits.per_tx {
                words.push(format!("at most {} per transaction", money(*ccy, *minor)));
            }
            for (_, ccy, minor) in &limits.daily {
                words.push(format!("at most {} per day", money(*ccy, *minor)));
            }
            if limits.amount_limited {
                words.push(match limits.currencies.as_slice() {
                    [] => "no currency is allowed".to_owned(),
                    currencies => format!(
                        "amounts only in {}",
                        list(currencies.iter().map(|c| c.as_str().to_owned()))
                    ),
                });
            }
            for (_, rows) in &limits.rows {
                words.push(format!(
                    "at most {} rows per {action}",
                    group(&rows.to_string())
                ));
            }
            if limits.pii.iter().any(|(_, allowed)| !allowed) {
                words.push("never with personal data".to_owned());
            }
            for (_, names) in &limits.collections {
                words.push(format!("only the collections {}", list(strings(names))));
            }
            for (_, codes) in &limits.reason_codes {
                words.push(format!("only for the reasons {}", list(strings(codes))));
            }
            if let Some(level) = limits.min_assurance.iter().map(|(_, l)| *l).max() {
                words.push(format!("needs assurance {level:?} or higher"));
            }
            match limits.problems.len() {
                0 => {}
                1 => words.push("refused for now: one of its limits cannot be read".to_owned()),
                n => words.push(format!("refused for now: {n} of its limits cannot be read")),
            }
            // Two sources may say the same (the seed's `max_amount` param and its flat key).
            let mut seen = Vec::with_capacity(words.len());
            words.retain(|w| {
                let first = !seen.contains(w);
                seen.push(w.clone());
                first
            });
            if words.is_empty() {
                words.push("no limits".to_owned());
            }
            CapabilityInWords {
                id: capability.id.as_str().to_owned(),
                limits: words,
            }
        })
        .collect()
}

/// Where the agent may operate: "anywhere", "nowhere", or the codes ("US (all of it), US-CA").
pub fn regions_in_words(regions: &[Region]) -> String {
    if regions.iter().any(|r| r.as_str() == "*") {
        return "anywhere".to_owned();
    }
    if regions.is_empty() {
        return "nowhere (no region is allowed)".to_owned();
    }
    list(regions.iter().map(|r| {
        if r.as_str().contains('-') {
            r.as_str().to_owned()
        } else {
            format!("{} (all of it)", r.as_str())
        }
    }))
}

/// The assurance level with what it means.
pub fn assurance_in_words(level: AssuranceLevel) -> &'static str {
    match level {
        AssuranceLevel::L0 => "L0 of L0–L3: the operator is not verified",
        AssuranceLevel::L1 => "L1 of L0–L3: the operator is lightly verified",
        AssuranceLevel::L2 => "L2 of L0–L3: the operator is verified",
        AssuranceLevel::L3 => "L3 of L0–L3: the operator is verified to the highest level",
    }
}

/// The tier with what it means.
pub fn tier_in_words(tier: Tier) -> &'static str {
    match tier {
        Tier::Sandbox => "sandbox (for testing)",
        Tier::Standard => "standard",
        Tier::Privileged => "privileged",
    }
}

/// `123456` minor units of USD → `1,234.56 USD`.
fn money(ccy: Ccy, minor: u64) -> String {
    let plain = ccy.money(minor);
    match plain.split_once([' ', '.']) {
        Some((units, rest)) => {
            let sep = &plain[units.len()..=units.len()];
            format!("{}{sep}{rest}", group(units))
        }
        None => plain,
    }
}

/// `1234567` → `1,234,567`.
fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn strings(values: &[Value]) -> impl Iterator<Item = String> + '_ {
    values.iter().filter_map(Value::as_str).map(str::to_owned)
}

/// `a`, `a and b`, `a, b and c`.
fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::passport::tests::seed_passport;

    fn with_limits(capabilities: Value, limits: Value) -> EdgePassport {
        let mut view = EdgePassport::from(&seed_passport());
        view.capabilities = serde_json::from_value(capabilities).unwrap();
        view.limits = serde_json::from_value(limits).unwrap();
        view
    }

    fn words(view: &EdgePassport) -> Vec<(String, Vec<String>)> {
        capabilities_in_words(view)
            .into_iter()
            .map(|c| (c.id, c.limits))
            .collect()
    }

    #[test]
    fn the_seed_passport_in_words() {
        let view = EdgePassport::from(&seed_passport());
        assert_eq!(
            words(&view),
            vec![
                (
                    "payments.refund".to_owned(),
                    vec![
                        "at most 100.00 USD per transaction".to_owned(),
                        "at most 1,000.00 USD per day".to_owned(),
                        "amounts only in USD".to_owned(),
                        "never with personal data".to_owned(),
                    ]
                ),
                (
                    "data.export".to_owned(),
                    vec![
                        "at most 1,000 rows per export".to_owned(),
                        "never with personal data".to_owned(),
                    ]
                ),
            ]
        );
    }

    #[test]
    fn the_oap_layout_in_words() {
        let view = with_limits(
            json!([{ "id": "payments.refund" }, { "id": "data.export" }, { "id": "kb.read" }]),
            json!({
                "payments.refund": {
                    "currency_limits": { "JPY": { "max_per_tx": 1234567 }, "KWD": { "daily_cap": 1500 } },
                    "reason_codes": ["customer_request", "duplicate"],
                    "min_assurance": "L3"
                },
                "data.export": { "max_rows": 50, "allowed_collections": ["orders"], "allow_pii": true }
            }),
        );
        assert_eq!(
            words(&view),
            vec![
                (
                    "payments.refund".to_owned(),
                    vec![
                        "at most 1,234,567 JPY per transaction".to_owned(),
                        "at most 1.500 KWD per day".to_owned(),
                        "amounts only in JPY and KWD".to_owned(),
                        "only for the reasons customer_request and duplicate".to_owned(),
                        "needs assurance L3 or higher".to_owned(),
                    ]
                ),
                (
                    "data.export".to_owned(),
                    vec![
                        "at most 50 rows per export".to_owned(),
                        "only the collections orders".to_owned(),
                    ]
                ),
                ("kb.read".to_owned(), vec!["no limits".to_owned()]),
            ]
        );
    }

    #[test]
    fn what_a_decision_cannot_read_is_said_to_refuse() {
        let view = with_limits(
            json!([{ "id": "payments.refund" }]),
            json!({ "refund_usd_weekly_cap": 5, "refund_usd_max_per_tx": -1 }),
        );
        assert_eq!(
            words(&view)[0].1,
            vec![
                "amounts only in USD".to_owned(),
                "refused for now: 2 of its limits cannot be read".to_owned()
            ]
        );
        let view = with_limits(
            json!([{ "id": "payments.refund" }]),
            json!({ "payments.refund": { "currency_limits": {} } }),
        );
        assert_eq!(words(&view)[0].1, vec!["no currency is allowed".to_owned()]);
    }

    #[test]
    fn regions_assurance_and_tiers() {
        let regions = |codes: &[&str]| {
            let parsed: Vec<Region> = codes.iter().map(|c| Region::parse(c).unwrap()).collect();
            regions_in_words(&parsed)
        };
        assert_eq!(regions(&["US-NY", "US-CA"]), "US-NY and US-CA");
        assert_eq!(
            regions(&["US", "DE-BE", "FR"]),
            "US (all of it), DE-BE and FR (all of it)"
        );
        assert_eq!(regions(&["US", "*"]), "anywhere");
        assert_eq!(regions(&[]), "nowhere (no region is allowed)");
        assert!(assurance_in_words(AssuranceLevel::L2).starts_with("L2 of L0–L3"));
        assert_eq!(tier_in_words(Tier::Sandbox), "sandbox (for testing)");
        assert_eq!(group("1"), "1");
        assert_eq!(group("1000"), "1,000");
        assert_eq!(group("100000"), "100,000");
    }
}
