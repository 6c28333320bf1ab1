use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what} id: {}", if *what == "callback" { "callback ids are UUIDs" } else { "ids are positive integers" })]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
}

macro_rules! platform_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A ", $what, " id as the contact-center platform numbers them: a positive integer.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            pub fn new(value: i64) -> Result<Self, IdError> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(IdError { what: $what, value: value.to_string() })
                }
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                let err = || IdError { what: $what, value: s.to_owned() };
                let trimmed = s.trim();
                if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                trimmed.parse::<i64>().map_err(|_| err()).and_then(|v| Self::new(v).map_err(|_| err()))
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = i64::deserialize(d)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

platform_id!(SkillId, "skill");
platform_id!(AgentId, "agent");
// The numeric alias of a callback (`callbacks.number`), for clients that only know integers.
platform_id!(CallbackNumber, "callback number");

/// A callback's identity. UUIDv7: unique across daemons without coordination, and
/// time-ordered so the primary key index stays append-mostly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallbackId(Uuid);

impl CallbackId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl FromStr for CallbackId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        Uuid::parse_str(s).map(Self).map_err(|_| IdError {
            what: "callback",
            value: s.to_owned(),
        })
    }
}

impl fmt::Display for CallbackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!("42".parse::<SkillId>().map(SkillId::get), Ok(42));
        assert!("0".parse::<SkillId>().is_err());
        assert!("-3".parse::<AgentId>().is_err());
        assert!("4x".parse::<AgentId>().is_err());
        assert!("".parse::<AgentId>().is_err());
        assert!("99999999999999999999".parse::<AgentId>().is_err());
        assert!(SkillId::new(0).is_err());
    }
}
