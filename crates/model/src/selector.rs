//! Kubernetes label selectors, checked once and then matched many times.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A requirement on one label.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Requirement {
    /// The label is set to one of the values.
    In(String, BTreeSet<String>),
    /// The label is absent or set to none of the values.
    NotIn(String, BTreeSet<String>),
    /// The label is set.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Checks and converts a Kubernetes label selector. The error says what is wrong
    /// with it, for use after the field path.
    pub fn parse(sel: &LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            check_key(k)?;
            requirements.push(Requirement::In(k.clone(), BTreeSet::from([v.clone()])));
        }
        for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
            check_key(&e.key).map_err(|m| format!("matchExpressions[{i}]: {m}"))?;
            let values = e.values.clone().unwrap_or_default();
            let set: BTreeSet<String> = values.iter().cloned().collect();
            if set.len() != values.len() {
                return Err(format!(
                    "matchExpressions[{i}]: duplicate values in {values:?}"
                ));
            }
            let r = match e.operator.as_str() {
                "In" | "NotIn" if set.is_empty() => {
                    return Err(format!(
                        "matchExpressions[{i}]: operator {} needs at least one value",
                        e.operator
                    ));
                }
                "In" => Requirement::In(e.key.clone(), set),
                "NotIn" => Requirement::NotIn(e.key.clone(), set),
                "Exists" | "DoesNotExist" if !set.is_empty() => {
                    return Err(format!(
                        "matchExpressions[{i}]: operator {} takes no values",
                        e.operator
                    ));
                }
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => {
                    return Err(format!(
                        "matchExpressions[{i}]: unknown operator {other:?} (In, NotIn, Exists, DoesNotExist)"
                    ));
                }
            };
            requirements.push(r);
        }
        requirements.sort();
        requirements.dedup();
        Ok(Selector { requirements })
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Like [`Selector::matches`], for an object's optional label map.
    pub fn matches_opt(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.matches(labels.unwrap_or(&EMPTY))
    }

    /// Whether this selector matches every object.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    /// Canonical text, as `kubectl` writes selectors: equal selectors print equal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |vs: &BTreeSet<String>| vs.iter().cloned().collect::<Vec<_>>().join(",");
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r {
                Requirement::In(k, vs) if vs.len() == 1 => format!("{k}={}", join(vs)),
                Requirement::In(k, vs) => format!("{k} in ({})", join(vs)),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", join(vs)),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Label keys: an optional DNS prefix and `/`, then a name of 1-63 characters of
/// alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
fn check_key(key: &str) -> Result<(), String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return Err(format!("invalid label key {key:?}: bad prefix"));
            }
            name
        }
        None => key,
    };
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = Selector::parse(&LabelSelector::default()).unwrap();
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
        assert!(s.is_everything());
    }

    #[test]
    fn operators() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("zone", "a")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["web", "api"]),
                expr("env", "NotIn", &["prod"]),
                expr("ready", "Exists", &[]),
                expr("drain", "DoesNotExist", &[]),
            ]),
        };
        let s = Selector::parse(&sel).unwrap();
        assert!(s.matches(&labels(&[("zone", "a"), ("tier", "web"), ("ready", "")])));
        assert!(!s.matches(&labels(&[("zone", "b"), ("tier", "web"), ("ready", "")])));
        assert!(!s.matches(&labels(&[("zone", "a"), ("tier", "db"), ("ready", "")])));
        assert!(!s.matches(&labels(&[
            ("zone", "a"),
            ("tier", "web"),
            ("ready", ""),
            ("env", "prod")
        ])));
        assert!(!s.matches(&labels(&[("zone", "a"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[
            ("zone", "a"),
            ("tier", "web"),
            ("ready", ""),
            ("drain", "1")
        ])));
    }

    #[test]
    fn bad_selectors_are_rejected() {
        for (op, values) in [("In", vec![]), ("Exists", vec!["x"]), ("Near", vec!["x"])] {
            let sel = LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![expr("k", op, &values)]),
            };
            assert!(Selector::parse(&sel).is_err(), "{op} {values:?}");
        }
        let sel = LabelSelector {
            match_labels: Some(labels(&[("-bad", "x")])),
            match_expressions: None,
        };
        assert!(Selector::parse(&sel).is_err());
    }

    #[test]
    fn canonical_text_ignores_order() {
        let a = LabelSelector {
            match_labels: Some(labels(&[("a", "1"), ("b", "2")])),
            match_expressions: Some(vec![expr("c", "In", &["y", "x"])]),
        };
        let b = LabelSelector {
            match_labels: Some(labels(&[("b", "2")])),
            match_expressions: Some(vec![expr("c", "In", &["x", "y"]), expr("a", "In", &["1"])]),
        };
        assert_eq!(
            Selector::parse(&a).unwrap().to_string(),
            Selector::parse(&b).unwrap().to_string()
        );
        assert_eq!(
            Selector::parse(&a).unwrap().to_string(),
            "a=1,b=2,c in (x,y)"
        );
    }
}
