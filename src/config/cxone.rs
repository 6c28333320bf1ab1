//! The CXone-compatible API surface (`docs/cxone.md`): off unless switched on, mounted under
//! its own prefix beside `/v1`.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Paths the daemon already answers under; the surface's prefix must not shadow them.
const TAKEN: [&str; 7] = [
    "/v1",
    "/console",
    "/c",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CxoneSettings {
    /// Answer CXone's scheduled-callback and promise requests under `prefix`.
    pub enabled: bool,
    /// Where the surface is mounted: `/cxone` answers `/cxone/scheduled-callbacks`.
    pub prefix: String,
}

impl Default for CxoneSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "/cxone".into(),
        }
    }
}

impl CxoneSettings {
    /// The prefix must be an absolute path of plain segments, without a trailing slash, that
    /// no other route of the daemon lives under.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let prefix = self.prefix.as_str();
        let plain = prefix.len() > 1
            && prefix.starts_with('/')
            && !prefix.ends_with('/')
            && !prefix.contains("//")
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
        if !plain {
            return Err(ConfigError::Invalid {
                setting: "cxone.prefix",
                problem: format!(
                    "`{prefix}` is not a path such as /cxone (a leading slash, no trailing one, letters, digits, - _ .)"
                ),
            });
        }
        let first = prefix
            .split('/')
            .nth(1)
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        if TAKEN.contains(&first.as_str()) {
            return Err(ConfigError::Invalid {
                setting: "cxone.prefix",
                problem: format!("`{prefix}` is under {first}, which the daemon already answers"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_a_plain_path_of_its_own() {
        let with = |prefix: &str| CxoneSettings {
            enabled: true,
            prefix: prefix.into(),
        };
        for good in ["/cxone", "/incontact/api/v30.0", "/cx_one-compat"] {
            assert!(with(good).validate().is_ok(), "{good}");
        }
        for bad in [
            "",
            "/",
            "cxone",
            "/cxone/",
            "/a//b",
            "/v1",
            "/v1/cxone",
            "/console",
            "/c x",
        ] {
            assert!(with(bad).validate().is_err(), "{bad}");
        }
    }
}
