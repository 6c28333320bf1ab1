//! The console's settings: how supervisors sign in (a token form, an OpenID Connect
//! provider and the mapping of its claims to permissions and skills) and how its cookies
//! are marked.

use serde::{Deserialize, Serialize};

use super::Secret;

/// How supervisors sign in to the console.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// The form that takes a security user's API token. Organisations that sign people in
    /// through their identity provider switch it off.
    pub token_sign_in: bool,
    /// The console is reached only over HTTPS: its cookies always carry `Secure` and the
    /// `__Host-` prefix, and cookies without the prefix are ignored. Off, they do so when a
    /// request says it came over HTTPS (a proxy's `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    pub oidc: OidcSettings,
}

/// Sign-in through an OpenID Connect provider (authorization code with PKCE).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSettings {
    pub enabled: bool,
    /// The provider's issuer URL; its discovery document is read from
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Empty for a public client.
    pub client_secret: Secret,
    /// Where the provider sends the browser back: this daemon's `/console/oidc/callback`, as
    /// registered with the provider.
    pub redirect_url: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The text of the sign-in button ("Sign in with …").
    pub provider_name: String,
    /// Where a person's permissions and skills come from: `claims` (the groups claim mapped
    /// by `groups`) or `user` (the security user linked to the person's subject).
    pub permissions_from: PermissionSource,
    /// The claim holding the person's groups or roles (a dotted path reaches into objects,
    /// `realm_access.roles`); a string or a list of strings.
    pub groups_claim: String,
    /// The claim whose value names the person in the console and the security users.
    pub name_claim: String,
    /// What each group grants; a person gets the union of their groups' grants.
    pub groups: Vec<GroupGrantSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionSource {
    Claims,
    User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupGrantSettings {
    pub group: String,
    /// Permission names, as `callbackd user add --permission` takes them, or `all`.
    pub permissions: Vec<String>,
    /// Absent: every skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<i64>>,
}

impl OidcSettings {
    /// The group grants as `domain` reads them (checked by `validate`: an unknown
    /// permission or skill id never gets here).
    pub fn claim_mapping(&self) -> crate::domain::ClaimMapping {
        crate::domain::ClaimMapping::new(
            self.groups
                .iter()
                .filter_map(|g| g.to_domain().ok())
                .collect(),
        )
    }
}

impl GroupGrantSettings {
    pub(super) fn to_domain(&self) -> Result<crate::domain::GroupGrant, String> {
        let permissions = if self.permissions.iter().any(|p| p == "all") {
            crate::domain::Permission::ALL.to_vec()
        } else {
            self.permissions
                .iter()
                .map(|p| {
                    p.parse()
                        .map_err(|e: crate::domain::PermissionError| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let skills = self
            .skills
            .as_ref()
            .map(|ids| {
                ids.iter()
                    .map(|id| crate::domain::SkillId::new(*id).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(crate::domain::GroupGrant {
            group: self.group.clone(),
            permissions,
            skills,
        })
    }
}
