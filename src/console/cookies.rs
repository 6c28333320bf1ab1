//! The console's two cookies — the session, and the short-lived binding of a sign-in at the
//! identity provider to the browser that began it — named and marked in one place.
//!
//! Over HTTPS they carry `Secure` and the `__Host-` prefix: a browser accepts such a cookie
//! only from a secure origin, with `Path=/` and no `Domain`, so neither a plain-http page
//! nor a sibling subdomain can plant or overwrite it. Over plain HTTP (development, or a
//! proxy that does not say `X-Forwarded-Proto: https`) they keep their bare names and the
//! console's paths.

use std::time::Duration;

use axum::http::{HeaderMap, header};

use crate::config::ConsoleSettings;

const SESSION: &str = "callbackd_console";
const OIDC: &str = "callbackd_oidc";
const HOST_PREFIX: &str = "__Host-";

/// How this request's cookies are named and marked.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    /// Set cookies with `Secure` and the `__Host-` prefix.
    secure: bool,
    /// Read only the prefixed cookies (`console.secure_cookies`): a plain-http page cannot
    /// set a session into the browser.
    prefixed_only: bool,
}

impl Cookies {
    pub fn of(settings: &ConsoleSettings, headers: &HeaderMap) -> Self {
        Cookies {
            secure: settings.secure_cookies || over_https(headers),
            prefixed_only: settings.secure_cookies,
        }
    }

    /// The session cookie holding `token` (empty with no age: cleared).
    pub fn session(self, token: &str, max_age: Duration) -> String {
        self.cookie(SESSION, token, "/console", "Strict", max_age)
    }

    /// The sign-in binding. `Lax`, so that the browser sends it when the provider (another
    /// site) sends it back; only to the callback's path where the prefix allows a path.
    pub fn oidc(self, value: &str, max_age: Duration) -> String {
        self.cookie(OIDC, value, "/console/oidc", "Lax", max_age)
    }

    pub fn session_token(self, headers: &HeaderMap) -> Option<String> {
        self.read(headers, SESSION)
    }

    pub fn oidc_binding(self, headers: &HeaderMap) -> Option<String> {
        self.read(headers, OIDC)
    }

    fn cookie(self, name: &str, value: &str, path: &str, same_site: &str, age: Duration) -> String {
        let age = age.as_secs();
        if self.secure {
            format!(
                "{HOST_PREFIX}{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={age}; Secure"
            )
        } else {
            format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={age}")
        }
    }

    /// The prefixed cookie first (it can only have come from a secure origin), then — unless
    /// only prefixed ones count — the bare one.
    fn read(self, headers: &HeaderMap, name: &str) -> Option<String> {
        cookie_value(headers, &format!("{HOST_PREFIX}{name}")).or_else(|| {
            if self.prefixed_only {
                None
            } else {
                cookie_value(headers, name)
            }
        })
    }
}

/// Whether a proxy in front says the request came over HTTPS.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The value of the request's cookie `name` (an empty one counts as none: that is how a
/// cookie is cleared).
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secure_cookies: bool) -> ConsoleSettings {
        ConsoleSettings {
            secure_cookies,
            ..ConsoleSettings::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn over_https_the_cookies_are_prefixed_secure_and_site_wide() {
        let proxied = headers(&[("x-forwarded-proto", "https")]);
        for cookies in [
            Cookies::of(&settings(false), &proxied),
            Cookies::of(&settings(true), &HeaderMap::new()),
        ] {
            let session = cookies.session("t", Duration::from_secs(60));
            assert!(
                session.starts_with("__Host-callbackd_console=t; Path=/;"),
                "{session}"
            );
            assert!(session.ends_with("; Secure"), "{session}");
            assert!(!session.contains("Domain"), "{session}");
            let oidc = cookies.oidc("b", Duration::ZERO);
            assert!(
                oidc.starts_with("__Host-callbackd_oidc=b; Path=/;"),
                "{oidc}"
            );
            assert!(
                oidc.contains("SameSite=Lax") && oidc.ends_with("; Secure"),
                "{oidc}"
            );
        }
    }

    #[test]
    fn over_plain_http_the_cookies_keep_their_names_and_paths() {
        let cookies = Cookies::of(&settings(false), &HeaderMap::new());
        let session = cookies.session("t", Duration::from_secs(60));
        assert!(
            session.starts_with("callbackd_console=t; Path=/console;"),
            "{session}"
        );
        assert!(!session.contains("Secure"), "{session}");
        assert!(
            cookies
                .oidc("b", Duration::ZERO)
                .starts_with("callbackd_oidc=b; Path=/console/oidc;")
        );
    }

    #[test]
    fn the_prefixed_cookie_wins_and_only_it_counts_when_https_is_required() {
        let both = headers(&[(
            "cookie",
            "callbackd_console=planted; __Host-callbackd_console=real",
        )]);
        let bare = headers(&[("cookie", "callbackd_console=planted")]);
        let auto = Cookies::of(&settings(false), &HeaderMap::new());
        let strict = Cookies::of(&settings(true), &HeaderMap::new());
        assert_eq!(auto.session_token(&both).as_deref(), Some("real"));
        assert_eq!(strict.session_token(&both).as_deref(), Some("real"));
        assert_eq!(auto.session_token(&bare).as_deref(), Some("planted"));
        assert_eq!(strict.session_token(&bare), None);
        let cleared = headers(&[("cookie", "__Host-callbackd_oidc=")]);
        assert_eq!(strict.oidc_binding(&cleared), None);
    }
}
