//! Typed reads of declared keys, following 2.3.5's resolution order.
//!
//! A value is taken from the key, else from its fallback keys, else from the code default
//! ([`crate::defaults`]). Two deliberate differences from Go, which turns an unparsable or empty
//! number into 0 or `false`: an empty value of a typed key falls back to the code default (with a
//! warning), and an unparsable one is an error naming the key.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use crate::defaults::{Param, param};
use crate::error::ConfigError;
use crate::map::ConfigMap;

pub(crate) struct Reader<'a> {
    map: &'a ConfigMap,
    /// Keys read so far; lets a test prove the defaults table holds no dead entries.
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Reader<'a> {
    pub fn new(map: &'a ConfigMap) -> Self {
        Self {
            map,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    #[cfg(test)]
    pub fn keys_read(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// The raw value and whether it is the code default.
    fn resolve(&self, key: &str) -> (&'static Param, String, bool) {
        let declared = param(key);
        self.read.borrow_mut().insert(declared.key);
        let configured = std::iter::once(declared.key)
            .chain(declared.fallback.iter().copied())
            .find_map(|candidate| self.map.get(candidate));
        match configured {
            Some(value) => (declared, value.to_string(), false),
            None => (declared, declared.default.to_string(), true),
        }
    }

    /// A string value; empty is a value unless the key is declared non-empty.
    pub fn string(&self, key: &str) -> Result<String, ConfigError> {
        let (declared, value, _) = self.resolve(key);
        if declared.non_empty && value.is_empty() {
            return Err(ConfigError::Empty { key: declared.key });
        }
        Ok(value)
    }

    /// A comma-separated list; blanks around items and empty items are dropped.
    pub fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let value = self.string(key)?;
        Ok(value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        let (declared, value, is_default) = self.resolve(key);
        if value.is_empty() {
            if declared.non_empty {
                return Err(ConfigError::Empty { key: declared.key });
            }
            if !is_default {
                tracing::warn!(
                    key = declared.key,
                    default = declared.default,
                    "empty config value, using the default"
                );
            }
            return Ok(parse(declared.default).unwrap_or_else(|| {
                panic!("code default of {} is not a {expected}", declared.key)
            }));
        }
        parse(&value).ok_or(ConfigError::Invalid {
            key: declared.key,
            value,
            expected,
        })
    }

    pub fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        self.typed(key, "boolean", parse_go_bool)
    }

    /// An integer of any width; the message names the Rust type's range.
    pub fn int<T: FromStr>(&self, key: &str) -> Result<T, ConfigError> {
        self.typed(key, std::any::type_name::<T>(), |value| value.parse().ok())
    }

    pub fn float(&self, key: &str) -> Result<f64, ConfigError> {
        self.typed(key, "number", |value| {
            value.parse::<f64>().ok().filter(|float| float.is_finite())
        })
    }

    /// A duration given as a (possibly fractional) number of seconds.
    pub fn seconds(&self, key: &str) -> Result<Duration, ConfigError> {
        self.typed(key, "non-negative number of seconds", |value| {
            parse_duration(value, 1.0)
        })
    }

    /// A duration given as a (possibly fractional) number of milliseconds.
    pub fn millis(&self, key: &str) -> Result<Duration, ConfigError> {
        self.typed(key, "non-negative number of milliseconds", |value| {
            parse_duration(value, 0.001)
        })
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_duration(value: &str, unit_seconds: f64) -> Option<Duration> {
    let amount: f64 = value.parse().ok()?;
    Duration::try_from_secs_f64(amount * unit_seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_integers_and_fractions() {
        assert_eq!(parse_duration("90", 1.0), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1.5", 1.0),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_duration("250", 0.001),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("-1", 1.0), None);
        assert_eq!(parse_duration("soon", 1.0), None);
    }

    #[test]
    fn booleans_follow_go() {
        assert_eq!(parse_go_bool("True"), Some(true));
        assert_eq!(parse_go_bool("0"), Some(false));
        assert_eq!(parse_go_bool("yes"), None);
    }
}
