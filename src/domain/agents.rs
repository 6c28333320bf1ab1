//! Preferred agents and ownership: a callback may name a few agents, in order. While its
//! ownership lasts (counted from when it is due) it goes to the first of them that is
//! active and has room; when the ownership ends without one taking it, to its skill.

use super::{AgentId, Gate, IdError, Pacer, RawId, Route, SkillId};

/// At most this many preferred agents per callback: a short list a person chose, not a
/// queue.
pub const MAX_TARGET_AGENTS: usize = 5;

/// The longest ownership: a week (168 hours).
pub const MAX_OWNERSHIP_SECONDS: u32 = 7 * 24 * 3600;

/// Why a list of target agents was refused (answered `InvalidTargetAgentId`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetAgentsError {
    #[error("targetAgentIds: at most {MAX_TARGET_AGENTS} agents may be listed, not {0}")]
    TooMany(usize),
    #[error("targetAgentIds: agent {0} is listed twice")]
    Repeated(AgentId),
    #[error("targetAgentIds[{index}]: {error}")]
    Invalid { index: usize, error: IdError },
    #[error("targetAgentIds[{0}] is empty (send [] to route to the skill)")]
    Blank(usize),
    #[error(
        "targetAgentId {single} is not the first of targetAgentIds ({first}); send one or the other"
    )]
    Disagree { single: AgentId, first: String },
}

/// The agents a create or change names, in order: `targetAgentIds`, or `targetAgentId` (a
/// list of one; `""` none). Both may be sent when they agree (the single id first in the
/// list). `None`: neither was sent.
pub fn target_agents(
    single: Option<&RawId>,
    list: Option<&[RawId]>,
) -> Result<Option<Vec<AgentId>>, super::RequestError> {
    let single = single.map(RawId::target_agent).transpose()?;
    let Some(list) = list else {
        return Ok(single.map(|agent| agent.into_iter().collect()));
    };
    if list.len() > MAX_TARGET_AGENTS {
        return Err(TargetAgentsError::TooMany(list.len()).into());
    }
    let mut agents = Vec::with_capacity(list.len());
    for (index, raw) in list.iter().enumerate() {
        if raw.0.trim().is_empty() {
            return Err(TargetAgentsError::Blank(index).into());
        }
        let id: AgentId = raw
            .0
            .parse()
            .map_err(|error| TargetAgentsError::Invalid { index, error })?;
        if agents.contains(&id) {
            return Err(TargetAgentsError::Repeated(id).into());
        }
        agents.push(id);
    }
    // `targetAgentId: ""` beside a list: the list decides.
    if let Some(Some(single)) = single
        && agents.first() != Some(&single)
    {
        return Err(TargetAgentsError::Disagree {
            single,
            first: agents
                .first()
                .map_or_else(|| "none".to_owned(), ToString::to_string),
        }
        .into());
    }
    Ok(Some(agents))
}

/// `ownershipSeconds`: 1 s to a week.
pub fn check_ownership(field: &str, seconds: i64) -> Result<u32, String> {
    u32::try_from(seconds)
        .ok()
        .filter(|s| (1..=MAX_OWNERSHIP_SECONDS).contains(s))
        .ok_or_else(|| {
            format!("{field}: {seconds} is out of range; send 1 to {MAX_OWNERSHIP_SECONDS} seconds (a week)")
        })
}

/// Which of a callback's preferred agents a pass offers it to: the first active one whose
/// gates have room (`gates` gives a route's gates). When every agent's own gate is full it
/// is held at the first one's; a full skill gate or a gate another claim holds decides at
/// once. `active`: the listed agents that are active, in order; none left means the skill.
pub fn offer(
    active: &[AgentId],
    skill: SkillId,
    pacer: &mut Pacer,
    gates: impl Fn(Route) -> Vec<Gate>,
) -> (super::Admission, Route) {
    use super::Admission;
    let mut first_full = None;
    for agent in active {
        let route = Route::Agent(*agent);
        match pacer.admit(&gates(route)) {
            Admission::Hold(gate @ Gate::Agent(_)) => {
                first_full.get_or_insert((Admission::Hold(gate), route));
            }
            decided => return (decided, route),
        }
    }
    match first_full {
        Some(held) => held,
        None => {
            let route = Route::Skill(skill);
            (pacer.admit(&gates(route)), route)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Admission, GateReading};
    use chrono::Utc;

    fn raw(ids: &[&str]) -> Vec<RawId> {
        ids.iter().map(|s| RawId((*s).into())).collect()
    }

    fn agent(n: i64) -> AgentId {
        AgentId::new(n).expect("id")
    }

    #[test]
    fn a_list_is_short_distinct_and_agrees_with_the_single_id() {
        assert_eq!(target_agents(None, None), Ok(None));
        assert_eq!(
            target_agents(Some(&RawId("7".into())), None),
            Ok(Some(vec![agent(7)]))
        );
        assert_eq!(
            target_agents(Some(&RawId("".into())), None),
            Ok(Some(vec![]))
        );
        assert_eq!(
            target_agents(None, Some(&raw(&["3", "1"]))),
            Ok(Some(vec![agent(3), agent(1)]))
        );
        assert_eq!(
            target_agents(Some(&RawId("3".into())), Some(&raw(&["3", "1"]))),
            Ok(Some(vec![agent(3), agent(1)]))
        );
        assert!(target_agents(Some(&RawId("1".into())), Some(&raw(&["3", "1"]))).is_err());
        assert!(target_agents(None, Some(&raw(&["3", "3"]))).is_err());
        assert!(target_agents(None, Some(&raw(&["1", "2", "3", "4", "5", "6"]))).is_err());
        assert!(target_agents(None, Some(&raw(&["1", ""]))).is_err());
        assert!(target_agents(None, Some(&raw(&["1", "x"]))).is_err());
    }

    #[test]
    fn ownership_is_a_second_to_a_week() {
        assert_eq!(check_ownership("ownershipSeconds", 3600), Ok(3600));
        assert!(check_ownership("ownershipSeconds", 0).is_err());
        assert!(check_ownership("ownershipSeconds", 604_801).is_err());
    }

    fn reading(in_flight: u32, max: u32) -> GateReading {
        GateReading {
            locked: true,
            in_flight,
            max_in_flight: Some(max),
            max_per_minute: None,
            next_at: None,
        }
    }

    #[test]
    fn the_first_agent_with_room_takes_it_else_it_waits_at_the_first() {
        let skill = SkillId::new(1).expect("id");
        let gates = |route: Route| match route {
            Route::Agent(a) => vec![Gate::Agent(a)],
            Route::Skill(_) => vec![],
        };
        let mut pacer = Pacer::new(
            Utc::now(),
            vec![
                (Gate::Agent(agent(1)), reading(1, 1)),
                (Gate::Agent(agent(2)), reading(0, 1)),
            ],
        );
        let (admission, route) = offer(&[agent(1), agent(2)], skill, &mut pacer, gates);
        assert_eq!((admission, route), (Admission::Go, Route::Agent(agent(2))));
        // Agent 2 is full now too: held at agent 1, the first listed.
        let (admission, route) = offer(&[agent(1), agent(2)], skill, &mut pacer, gates);
        assert_eq!(
            (admission, route),
            (
                Admission::Hold(Gate::Agent(agent(1))),
                Route::Agent(agent(1))
            )
        );
        // No active agent left: the skill.
        let (admission, route) = offer(&[], skill, &mut pacer, gates);
        assert_eq!((admission, route), (Admission::Go, Route::Skill(skill)));
    }
}
