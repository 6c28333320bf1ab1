//! Skills and agents by name: the console shows names where people think in names, with
//! the id beside, and offers agents by name where a person picks one.

use std::collections::HashMap;

use maud::{Markup, html};
use serde_json::Value;

use crate::domain::{Agent, SkillId};
use crate::store::{Store, StoreError};

/// The most preferred agents a callback names.
const PICKS: usize = 5;

/// Skills by name, agents with their names and skills.
#[derive(Debug, Default)]
pub struct Names {
    pub skills: HashMap<i64, String>,
    pub agents: HashMap<i64, Agent>,
}

impl Names {
    /// Every skill's and agent's name (a directory is hundreds, at most thousands).
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let skills = store.skills(10_000).await?;
        let agents = store.agents(10_000).await?;
        Ok(Self {
            skills: skills.into_iter().map(|s| (s.id.get(), s.name)).collect(),
            agents: agents.into_iter().map(|a| (a.id.get(), a)).collect(),
        })
    }

    pub fn skill(&self, id: i64) -> String {
        match self.skills.get(&id) {
            Some(name) => format!("{name} ({id})"),
            None => format!("skill {id}"),
        }
    }

    pub fn agent(&self, id: i64) -> String {
        match self.agents.get(&id) {
            Some(agent) => format!("{} ({id})", agent.shown_name()),
            None => format!("agent {id}"),
        }
    }

    /// One agent id or a list of them (an event's details); none: the skill's queue.
    pub fn agents(&self, ids: &Value) -> String {
        let ids: Vec<i64> = match ids {
            Value::Array(items) => items.iter().filter_map(Value::as_i64).collect(),
            other => other.as_i64().into_iter().collect(),
        };
        if ids.is_empty() {
            return "the skill's queue".to_owned();
        }
        ids.iter()
            .map(|id| self.agent(*id))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What a person typed in a picker as the agent's id: the id itself (what choosing an
    /// offered agent fills in), or a username.
    pub fn agent_id(&self, typed: &str) -> String {
        let typed = typed.trim();
        self.agents
            .values()
            .find(|a| a.username.eq_ignore_ascii_case(typed))
            .map_or_else(|| typed.to_owned(), |a| a.id.to_string())
    }

    /// Active agents to offer for a callback of `skill`: those who take it first, then the
    /// others, each by name.
    fn offered(&self, skill: Option<SkillId>) -> Vec<(&Agent, bool)> {
        let mut agents: Vec<(&Agent, bool)> = self
            .agents
            .values()
            .filter(|a| a.active)
            .map(|a| (a, skill.is_some_and(|s| a.skills.contains(&s))))
            .collect();
        agents.sort_by(|(a, a_takes), (b, b_takes)| {
            b_takes
                .cmp(a_takes)
                .then_with(|| a.shown_name().cmp(b.shown_name()))
                .then(a.id.cmp(&b.id))
        });
        agents
    }

    /// The preferred-agents fields (`agent`, `agent2` … `agent5`) with a list of active
    /// agents to choose from by name or username, the skill's own first; `current`: the
    /// agents named now.
    pub fn picker(&self, skill: Option<SkillId>, current: &[i64]) -> Markup {
        let ordinal = ["First", "Second", "Third", "Fourth", "Fifth"];
        html! {
            fieldset.picker #agent-picker {
                legend { "Preferred agents, in order (none: the skill's queue)" }
                @for (i, label) in ordinal.iter().enumerate().take(PICKS) {
                    @let (id, name) = if i == 0 { ("agent".to_owned(), "agent".to_owned()) } else { (format!("agent-{}", i + 1), format!("agent{}", i + 1)) };
                    label for=(id) { (label) }
                    input id=(id) name=(name) type="text" list="agent-options" autocomplete="off"
                        value=[current.get(i)];
                }
                datalist #agent-options {
                    @for (agent, takes) in self.offered(skill) {
                        option value=(agent.id) {
                            (agent.shown_name()) " — " (agent.username)
                            @if takes { " · takes this skill" }
                        }
                    }
                }
            }
        }
    }
}

/// The picker's fields as a form sends them.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PickedAgents {
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    agent2: Option<String>,
    #[serde(default)]
    agent3: Option<String>,
    #[serde(default)]
    agent4: Option<String>,
    #[serde(default)]
    agent5: Option<String>,
}

impl PickedAgents {
    /// The agents chosen, in order, as ids (usernames resolved); empty: the skill.
    pub fn ids(&self, names: &Names) -> Vec<String> {
        [
            &self.agent,
            &self.agent2,
            &self.agent3,
            &self.agent4,
            &self.agent5,
        ]
        .into_iter()
        .flatten()
        .flat_map(|field| field.split([',', ' ']))
        .filter(|typed| !typed.trim().is_empty())
        .map(|typed| names.agent_id(typed))
        .collect()
    }
}
