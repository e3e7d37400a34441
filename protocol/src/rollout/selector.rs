//! Device selectors: `group=field,site!=lab,gpu` selects the devices whose
//! labels (and reported facts: `platform`, `hostname`, `id`) satisfy every
//! comma-separated term: `key=value`, `key!=value` (also true when the key
//! is absent), `key~text` (the value contains `text`), or a bare `key`
//! (present). The empty selector selects every device. Values may hold
//! the characters of release names and platforms (`app@1.0`,
//! `linux/arm64`); labels themselves stay stricter.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One term of a selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Term {
    Equals(String, String),
    NotEquals(String, String),
    /// The value contains the text (`id~pi-`).
    Contains(String, String),
    Exists(String),
}

/// A parsed selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    pub terms: Vec<Term>,
}

/// Why a selector was refused, quoting it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selector {text:?}: {reason}")]
pub struct SelectorError {
    pub text: String,
    pub reason: String,
}

/// Label keys and values: 1-63 of `[A-Za-z0-9_.-]` (and `/` in keys).
fn valid(s: &str, key: bool) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') || (key && b == b'/')
        })
}

/// A selector's value: a label value, or a fact such as `app@1.0` or
/// `linux/arm64`.
fn valid_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b'/' | b':' | b'+')
        })
}

/// Checks one label (`petrel device label ID k=v`).
pub fn validate_label(key: &str, value: &str) -> Result<(), String> {
    if !valid(key, true) {
        return Err(format!("label key {key:?} must be 1-63 of [A-Za-z0-9_.-/]"));
    }
    if !valid(value, false) {
        return Err(format!(
            "label value {value:?} must be 1-63 of [A-Za-z0-9_.-]"
        ));
    }
    Ok(())
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Selector, SelectorError> {
        let fail = |reason: String| SelectorError {
            text: text.to_string(),
            reason,
        };
        let mut terms = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let term = if let Some((k, v)) = raw.split_once("!=") {
                Term::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = raw.split_once('~') {
                Term::Contains(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = raw.split_once('=') {
                Term::Equals(k.trim().into(), v.trim().into())
            } else {
                Term::Exists(raw.into())
            };
            let (key, value) = match &term {
                Term::Equals(k, v) | Term::NotEquals(k, v) | Term::Contains(k, v) => (k, Some(v)),
                Term::Exists(k) => (k, None),
            };
            if !valid(key, true) || value.is_some_and(|v| !valid_value(v)) {
                return Err(fail(format!(
                    "term {raw:?} is not key=value, key!=value, key~text or key"
                )));
            }
            terms.push(term);
        }
        Ok(Selector { terms })
    }
}

impl Selector {
    /// Whether a device with these labels and facts is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::NotEquals(k, v) => labels.get(k) != Some(v),
            Term::Contains(k, v) => labels.get(k).is_some_and(|l| l.contains(v.as_str())),
            Term::Exists(k) => labels.contains_key(k),
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|t| match t {
                Term::Equals(k, v) => format!("{k}={v}"),
                Term::NotEquals(k, v) => format!("{k}!={v}"),
                Term::Contains(k, v) => format!("{k}~{v}"),
                Term::Exists(k) => k.clone(),
            })
            .collect();
        f.write_str(&terms.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_term_must_hold_and_not_equals_is_true_for_an_absent_key() {
        let s: Selector = "group=field, site!=lab,gpu".parse().unwrap();
        assert!(s.matches(&labels(&[
            ("group", "field"),
            ("site", "north"),
            ("gpu", "1")
        ])));
        assert!(s.matches(&labels(&[("group", "field"), ("gpu", "")])));
        assert!(!s.matches(&labels(&[
            ("group", "field"),
            ("site", "lab"),
            ("gpu", "1")
        ])));
        assert!(!s.matches(&labels(&[("group", "field")])));
        assert_eq!(s.to_string(), "group=field,site!=lab,gpu");
        assert!("".parse::<Selector>().unwrap().matches(&labels(&[])));
    }

    #[test]
    fn malformed_terms_are_errors_quoting_the_selector() {
        for bad in ["=x", "a=", "a=b=c", "a b=c", "a=#"] {
            let e = bad.parse::<Selector>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(validate_label("site", "lab-2").is_ok());
        assert!(validate_label("site", "").is_err());
        assert!(validate_label("a,b", "x").is_err());
    }

    #[test]
    fn contains_terms_and_release_or_platform_values_select_by_fact() {
        let s: Selector = "id~pi-,release=app@1.0,platform=linux/arm64"
            .parse()
            .unwrap();
        let facts = labels(&[
            ("id", "lab-pi-7"),
            ("release", "app@1.0"),
            ("platform", "linux/arm64"),
        ]);
        assert!(s.matches(&facts));
        assert!(!s.matches(&labels(&[("id", "lab-7"), ("release", "app@1.0")])));
        assert_eq!(s.to_string(), "id~pi-,release=app@1.0,platform=linux/arm64");
    }
}
