//! What a person signed in through the identity provider may do: the groups (or roles) in
//! their ID token, mapped by the configured grants to callbackd permissions and skills.
//! Pure: the ID token has been verified before any of this is asked.

use serde_json::Value;

use super::{Permission, SkillId};

/// What members of one group get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupGrant {
    pub group: String,
    pub permissions: Vec<Permission>,
    /// `None`: every skill.
    pub skills: Option<Vec<SkillId>>,
}

/// A person's permissions and skills, from all their groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub permissions: Vec<Permission>,
    /// `None`: every skill.
    pub skills: Option<Vec<SkillId>>,
}

/// The configured grants.
#[derive(Debug, Clone, Default)]
pub struct ClaimMapping {
    grants: Vec<GroupGrant>,
}

impl ClaimMapping {
    pub fn new(grants: Vec<GroupGrant>) -> Self {
        Self { grants }
    }

    /// The union of the grants of `groups`; `None` when no grant names any of them (the
    /// person may not sign in: belonging to the organisation is not enough).
    ///
    /// A group that grants every skill lifts the limit of the others: grants only ever add.
    pub fn grant(&self, groups: &[String]) -> Option<Grant> {
        let mut matched = self
            .grants
            .iter()
            .filter(|g| groups.contains(&g.group))
            .peekable();
        matched.peek()?;
        let mut permissions = Vec::new();
        let mut skills = Some(Vec::new());
        for grant in matched {
            permissions.extend(grant.permissions.iter().copied());
            skills = match (skills, &grant.skills) {
                (Some(mut mine), Some(theirs)) => {
                    mine.extend(theirs.iter().copied());
                    Some(mine)
                }
                _ => None,
            };
        }
        permissions.sort_unstable();
        permissions.dedup();
        if let Some(ids) = skills.as_mut() {
            ids.sort_unstable();
            ids.dedup();
        }
        Some(Grant {
            permissions,
            skills,
        })
    }
}

/// The strings in a token's claims at `path` (dotted: `realm_access.roles`): a list of
/// strings, or one string (groups, roles, a name). Anything else — absent, a number, an
/// object — is none.
pub fn claim_strings(claims: &Value, path: &str) -> Vec<String> {
    let found = path
        .split('.')
        .try_fold(claims, |value, key| value.get(key));
    match found {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn skill(id: i64) -> SkillId {
        SkillId::new(id).expect("skill id")
    }

    fn mapping() -> ClaimMapping {
        ClaimMapping::new(vec![
            GroupGrant {
                group: "supervisors".into(),
                permissions: vec![Permission::CallbacksRead, Permission::CallbacksCancel],
                skills: None,
            },
            GroupGrant {
                group: "sales-leads".into(),
                permissions: vec![Permission::CallbacksRead, Permission::CallbacksUpdate],
                skills: Some(vec![skill(102), skill(101)]),
            },
            GroupGrant {
                group: "support-leads".into(),
                permissions: vec![Permission::CallbacksRead],
                skills: Some(vec![skill(201), skill(101)]),
            },
        ])
    }

    #[test]
    fn a_person_in_no_mapped_group_gets_nothing() {
        assert_eq!(mapping().grant(&[]), None);
        assert_eq!(mapping().grant(&["everyone".into()]), None);
        assert_eq!(ClaimMapping::default().grant(&["supervisors".into()]), None);
    }

    #[test]
    fn one_group_grants_its_permissions_and_skills() {
        let grant = mapping().grant(&["sales-leads".into()]).expect("granted");
        assert_eq!(
            grant.permissions,
            vec![Permission::CallbacksRead, Permission::CallbacksUpdate]
        );
        assert_eq!(grant.skills, Some(vec![skill(101), skill(102)]));
    }

    #[test]
    fn several_groups_add_up() {
        let grant = mapping()
            .grant(&["sales-leads".into(), "support-leads".into()])
            .expect("granted");
        assert_eq!(
            grant.permissions,
            vec![Permission::CallbacksRead, Permission::CallbacksUpdate]
        );
        assert_eq!(grant.skills, Some(vec![skill(101), skill(102), skill(201)]));
    }

    #[test]
    fn a_group_with_every_skill_lifts_the_skill_limit() {
        let grant = mapping()
            .grant(&["sales-leads".into(), "supervisors".into()])
            .expect("granted");
        assert_eq!(grant.skills, None);
        assert!(grant.permissions.contains(&Permission::CallbacksCancel));
    }

    #[test]
    fn group_names_match_exactly() {
        assert_eq!(mapping().grant(&["Supervisors".into()]), None);
        assert_eq!(mapping().grant(&["supervisors ".into()]), None);
    }

    #[test]
    fn groups_are_read_from_a_list_a_string_or_a_nested_claim() {
        let claims = json!({
            "groups": ["a", 7, "b"],
            "role": "c",
            "realm_access": {"roles": ["d"]},
            "odd": {"x": 1},
        });
        assert_eq!(claim_strings(&claims, "groups"), vec!["a", "b"]);
        assert_eq!(claim_strings(&claims, "role"), vec!["c"]);
        assert_eq!(claim_strings(&claims, "realm_access.roles"), vec!["d"]);
        assert!(claim_strings(&claims, "odd").is_empty());
        assert!(claim_strings(&claims, "missing").is_empty());
        assert!(claim_strings(&claims, "realm_access.missing").is_empty());
    }
}
