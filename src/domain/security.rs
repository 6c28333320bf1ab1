//! Security users: who may ask for what. Tokens are random and only their SHA-256 is stored;
//! a fast hash is right here because the token has 256 bits of entropy (nothing to brute-force).

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::SkillId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    CallbacksCreate,
    CallbacksRead,
    CallbacksUpdate,
    CallbacksCancel,
    DirectoryRead,
    DirectoryWrite,
    DncRead,
    DncWrite,
    /// Read webhook subscriptions and their delivery attempts.
    WebhooksRead,
    /// Create, change and delete webhook subscriptions (and see their secrets when set).
    WebhooksWrite,
    /// Export everything held about a phone number.
    PrivacyExport,
    /// Erase a phone number's personal data.
    PrivacyErase,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a permission; expected one of {list}", list = Permission::names().join(", "))]
pub struct PermissionError(pub String);

impl Permission {
    pub const ALL: [Permission; 12] = [
        Self::CallbacksCreate,
        Self::CallbacksRead,
        Self::CallbacksUpdate,
        Self::CallbacksCancel,
        Self::DirectoryRead,
        Self::DirectoryWrite,
        Self::DncRead,
        Self::DncWrite,
        Self::WebhooksRead,
        Self::WebhooksWrite,
        Self::PrivacyExport,
        Self::PrivacyErase,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallbacksCreate => "callbacks:create",
            Self::CallbacksRead => "callbacks:read",
            Self::CallbacksUpdate => "callbacks:update",
            Self::CallbacksCancel => "callbacks:cancel",
            Self::DirectoryRead => "directory:read",
            Self::DirectoryWrite => "directory:write",
            Self::DncRead => "dnc:read",
            Self::DncWrite => "dnc:write",
            Self::WebhooksRead => "webhooks:read",
            Self::WebhooksWrite => "webhooks:write",
            Self::PrivacyExport => "privacy:export",
            Self::PrivacyErase => "privacy:erase",
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|p| p.as_str()).collect()
    }
}

impl FromStr for Permission {
    type Err = PermissionError;
    fn from_str(s: &str) -> Result<Self, PermissionError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| PermissionError(s.to_owned()))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct SecurityUser {
    pub id: i64,
    pub name: String,
    pub permissions: Vec<Permission>,
    /// `None`: every skill. `Some`: only these.
    pub skills: Option<Vec<SkillId>>,
}

impl SecurityUser {
    /// A usable name: 1 to 100 printable characters, without the blanks around it.
    pub fn check_name(name: &str) -> Result<&str, String> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            Err(format!(
                "`{name}` is not a usable user name (1-100 printable characters)"
            ))
        } else {
            Ok(name)
        }
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
            // Whoever may write the directory may read it.
            || (permission == Permission::DirectoryRead
                && self.permissions.contains(&Permission::DirectoryWrite))
            || (permission == Permission::WebhooksRead
                && self.permissions.contains(&Permission::WebhooksWrite))
    }

    pub fn may_use_skill(&self, skill: SkillId) -> bool {
        self.skills
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&skill))
    }
}

/// A bearer token as handed to a person once. Never logged: `Debug` hides it.
pub struct Token(String);

impl Token {
    const PREFIX: &'static str = "cbd_";

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("{}{}", Self::PREFIX, hex::encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// What the store keeps of a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("cbd_") && a.expose().len() == 68);
        assert_eq!(a.hash(), TokenHash::of(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(format!("{a:?}"), "Token(***)");
    }

    #[test]
    fn skill_allow_list() {
        let user = SecurityUser {
            id: 1,
            name: "ivr".into(),
            permissions: vec![Permission::CallbacksCreate],
            skills: Some(vec![SkillId::new(3).expect("id")]),
        };
        assert!(user.may_use_skill(SkillId::new(3).expect("id")));
        assert!(!user.may_use_skill(SkillId::new(4).expect("id")));
        assert!(user.has(Permission::CallbacksCreate));
        assert!(!user.has(Permission::CallbacksRead));
    }
}
