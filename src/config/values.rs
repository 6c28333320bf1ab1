//! Setting values parsed once, when the configuration is read: a time zone, a region, a
//! cron schedule, a URL whose password never prints. Each reads from and writes to the same
//! text the file holds, so an invalid one stops start-up naming the setting and the value.

use std::fmt;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IANA time zone name, such as `Europe/London`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub Tz);

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map(TimeZone).map_err(|_| {
            serde::de::Error::custom(format!("`{name}` is not an IANA time zone name"))
        })
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

/// A two-letter region (ISO 3166), such as `US` or `GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(pub phonenumber::country::Id);

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        let parsed = (code.len() == 2)
            .then(|| code.to_ascii_uppercase().parse().ok())
            .flatten();
        parsed.map(Region).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{code}` is not a two-letter region code such as US or GB"
            ))
        })
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_ref())
    }
}

/// A cron schedule with seconds (`sec min hour day-of-month month day-of-week`), read by
/// the same parser, with the same options, as the scheduler that runs the jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron(String);

impl Cron {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(expr: &str) -> Option<Self> {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(expr)
            .ok()
            .map(|_| Self(expr.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Cron {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expr = String::deserialize(d)?;
        Cron::parse(&expr).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{expr}` is not a cron expression with seconds, such as \"0 30 3 * * *\""
            ))
        })
    }
}

impl Serialize for Cron {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl From<&str> for Cron {
    /// For defaults and tests; an invalid expression is caught when the settings are read.
    fn from(expr: &str) -> Self {
        Self(expr.to_owned())
    }
}

/// A connection URL that may hold a password: shown (in `Debug`, `Display`, logs and error
/// messages) with the password replaced by `***`; only [`SecretUrl::expose`] gives it out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL with its password, for the client library that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

impl Serialize for SecretUrl {
    /// The real value: figment layers defaults through serialisation.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", redact(&self.0))
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

/// A secret (a client secret) that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the client library that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Secret {
    /// The real value: figment layers defaults through serialisation.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "***" })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// The URL without its password.
pub fn redact(url: &str) -> String {
    let url = &redact_query_password(url);
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `password=…` in the query string (libpq takes one there too) as `password=***`.
fn redact_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_query_string_never_prints() {
        assert_eq!(
            redact("postgres://callbackd@db/callbackd?sslmode=verify-full&password=s3cr3t"),
            "postgres://callbackd@db/callbackd?sslmode=verify-full&password=***"
        );
        assert_eq!(
            redact("postgres://u:pw@db/x?Password=s3cr3t"),
            "postgres://u:***@db/x?Password=***"
        );
        assert_eq!(
            redact("postgres://db/x?sslmode=disable"),
            "postgres://db/x?sslmode=disable"
        );
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::from("s3cr3t");
        assert_eq!(secret.to_string(), "***");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        assert_eq!(secret.expose(), "s3cr3t");
    }

    #[test]
    fn passwords_never_print() {
        let url = SecretUrl::from("amqp://guest:secret@host:5672/%2f");
        assert_eq!(url.to_string(), "amqp://guest:***@host:5672/%2f");
        assert!(!format!("{url:?}").contains("secret"));
        assert_eq!(url.expose(), "amqp://guest:secret@host:5672/%2f");
        assert_eq!(redact("amqp://host/%2f"), "amqp://host/%2f");
        assert_eq!(redact("postgres://user@db/x"), "postgres://user@db/x");
    }

    #[test]
    fn values_are_parsed_once_and_written_back_as_read() {
        let zone: TimeZone = serde_json::from_str("\"Europe/Paris\"").expect("zone");
        assert_eq!(
            serde_json::to_string(&zone).expect("json"),
            "\"Europe/Paris\""
        );
        assert!(serde_json::from_str::<TimeZone>("\"Mars/Olympus\"").is_err());
        let region: Region = serde_json::from_str("\"gb\"").expect("region");
        assert_eq!(serde_json::to_string(&region).expect("json"), "\"GB\"");
        assert!(serde_json::from_str::<Region>("\"GBR\"").is_err());
        assert!(serde_json::from_str::<Cron>("\"0 30 3 * * *\"").is_ok());
        assert!(
            serde_json::from_str::<Cron>("\"30 3 * * *\"").is_err(),
            "seconds required"
        );
    }
}
