//! Pacing by capacity: a due callback goes out only while its gates have room. A skill's
//! gate caps its callbacks in flight (published, no final outcome yet) and its publications
//! per minute; an agent's gate caps the callbacks routed to that agent in flight. A callback
//! over a limit stays pending, held at the gate, and goes out oldest first as room frees.
//!
//! The store reads each gate under a lock that only one claim at a time can hold; this
//! module decides, from those readings, which callbacks of one claim may go.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{AgentId, IdError, Route, SkillId, SkillPolicy};

/// What may hold a callback back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gate {
    Skill(SkillId),
    Agent(AgentId),
}

impl Gate {
    /// As stored in `callbacks.paced_gate`: the skill id, or minus the agent id.
    pub fn encode(self) -> i64 {
        match self {
            Self::Skill(s) => s.get(),
            Self::Agent(a) => -a.get(),
        }
    }

    /// The metric label: `skill` or `agent`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Skill(_) => "skill",
            Self::Agent(_) => "agent",
        }
    }

    pub fn decode(stored: i64) -> Result<Self, IdError> {
        if stored < 0 {
            AgentId::new(-stored).map(Self::Agent)
        } else {
            SkillId::new(stored).map(Self::Skill)
        }
    }
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Skill(s) => write!(f, "skill {s}"),
            Self::Agent(a) => write!(f, "agent {a}"),
        }
    }
}

/// Limits that apply where a skill or an agent sets none (`pacing` in the configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacingDefaults {
    pub skill_max_in_flight: Option<u32>,
    pub skill_max_per_minute: Option<u32>,
    /// `None`: an agent may have any number of callbacks in flight.
    pub agent_max_in_flight: Option<u32>,
}

/// A skill's limits, its own over the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkillPacing {
    pub max_in_flight: Option<u32>,
    pub max_per_minute: Option<u32>,
    /// Dispatch paused: its gate has room for none.
    pub paused: bool,
}

impl SkillPacing {
    /// A limit is at least 1 (none is `None`) and fits the store's `integer`.
    pub fn check(&self) -> Result<(), super::DirectoryInputError> {
        for (name, value) in [
            ("maxInFlight", self.max_in_flight),
            ("maxPerMinute", self.max_per_minute),
        ] {
            if let Some(v) = value.filter(|v| *v == 0 || *v > i32::MAX as u32) {
                return Err(super::DirectoryInputError::Policy(format!(
                    "{name}: {v} is not in 1..=2147483647 (leave it out for no limit)"
                )));
            }
        }
        Ok(())
    }

    pub fn is_limited(&self) -> bool {
        self.max_in_flight.is_some() || self.max_per_minute.is_some() || self.paused
    }
}

impl SkillPolicy {
    pub fn pacing(&self, defaults: &PacingDefaults) -> SkillPacing {
        SkillPacing {
            paused: self.routing.paused.is_some(),
            max_in_flight: self.max_in_flight.or(defaults.skill_max_in_flight),
            max_per_minute: self.max_per_minute.or(defaults.skill_max_per_minute),
        }
    }
}

/// The gates a callback of `skill_id` must pass to be published on `route`.
pub fn gates_of(
    route: Route,
    skill_id: SkillId,
    skill: SkillPacing,
    defaults: &PacingDefaults,
) -> Vec<Gate> {
    let mut gates = Vec::with_capacity(2);
    if skill.is_limited() {
        gates.push(Gate::Skill(skill_id));
    }
    if let (Route::Agent(agent), Some(_)) = (route, defaults.agent_max_in_flight) {
        gates.push(Gate::Agent(agent));
    }
    gates
}

/// A gate as read under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateReading {
    /// False: another claim holds the gate right now; its callbacks wait for the next pass.
    pub locked: bool,
    /// Published and not finished.
    pub in_flight: u32,
    pub max_in_flight: Option<u32>,
    pub max_per_minute: Option<u32>,
    /// When the next rate-paced publication may go.
    pub next_at: Option<DateTime<Utc>>,
}

/// Whether a callback may be published in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Over this gate's limit: held there (pending) until it has room.
    Hold(Gate),
    /// Another claim holds one of its gates: left as it is for the next pass.
    Wait,
}

/// At most this much of a rate is caught up after a quiet spell: publications per minute
/// are spread evenly, never bunched more than a second's worth.
const RATE_CATCH_UP: Duration = Duration::seconds(1);

#[derive(Debug, Clone, Copy)]
struct Room {
    locked: bool,
    /// `None`: no cap on callbacks in flight.
    in_flight_left: Option<u32>,
    /// Rate-paced: the next publication's time and the spacing.
    rate: Option<(DateTime<Utc>, Duration)>,
    /// The rate's time moved in this pass (to be stored).
    rate_used: bool,
}

impl Room {
    fn has_room(&self, now: DateTime<Utc>) -> bool {
        self.in_flight_left != Some(0) && self.rate.is_none_or(|(next, _)| next <= now)
    }

    fn take(&mut self) {
        if let Some(left) = self.in_flight_left.as_mut() {
            *left = left.saturating_sub(1);
        }
        if let Some((next, spacing)) = self.rate.as_mut() {
            *next += *spacing;
            self.rate_used = true;
        }
    }
}

/// One claim's pacing decisions, from its gates' readings.
#[derive(Debug, Clone)]
pub struct Pacer {
    now: DateTime<Utc>,
    rooms: HashMap<Gate, Room>,
}

impl Pacer {
    pub fn new(
        now: DateTime<Utc>,
        readings: impl IntoIterator<Item = (Gate, GateReading)>,
    ) -> Self {
        let rooms = readings
            .into_iter()
            .map(|(gate, r)| {
                let rate = r.max_per_minute.map(|per_minute| {
                    let spacing = Duration::microseconds(60_000_000 / i64::from(per_minute.max(1)));
                    let next = r.next_at.unwrap_or(now).max(now - RATE_CATCH_UP);
                    (next, spacing)
                });
                let room = Room {
                    locked: r.locked,
                    in_flight_left: r.max_in_flight.map(|max| max.saturating_sub(r.in_flight)),
                    rate,
                    rate_used: false,
                };
                (gate, room)
            })
            .collect();
        Self { now, rooms }
    }

    /// How many held callbacks the gate could let go now (an upper bound: their other
    /// gates may still hold them); `None` when it has no limit left to apply.
    pub fn room(&self, gate: Gate) -> Option<u32> {
        let room = self.rooms.get(&gate)?;
        if !room.locked {
            return Some(0);
        }
        let by_rate = room.rate.map(|(next, spacing)| {
            if next > self.now {
                0
            } else {
                let span = (self.now - next).num_microseconds().unwrap_or(0);
                let step = spacing.num_microseconds().unwrap_or(1).max(1);
                u32::try_from(span / step + 1).unwrap_or(u32::MAX)
            }
        });
        match (room.in_flight_left, by_rate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Decides one callback, in the order callbacks should go (oldest due first), taking
    /// room at every gate when it goes.
    pub fn admit(&mut self, gates: &[Gate]) -> Admission {
        for gate in gates {
            let Some(room) = self.rooms.get(gate) else {
                continue;
            };
            if !room.locked {
                return Admission::Wait;
            }
            if !room.has_room(self.now) {
                return Admission::Hold(*gate);
            }
        }
        for gate in gates {
            if let Some(room) = self.rooms.get_mut(gate) {
                room.take();
            }
        }
        Admission::Go
    }

    /// The skills whose rate was used in this pass, with their next publication time.
    pub fn rate_updates(&self) -> Vec<(SkillId, DateTime<Utc>)> {
        self.rooms
            .iter()
            .filter_map(|(gate, room)| match (gate, room.rate) {
                (Gate::Skill(skill), Some((next, _))) if room.rate_used => Some((*skill, next)),
                _ => None,
            })
            .collect()
    }

    /// The earliest time a rate-paced gate has room again, if one has none now.
    pub fn next_rate_at(&self) -> Option<DateTime<Utc>> {
        self.rooms
            .values()
            .filter_map(|room| room.rate.map(|(next, _)| next))
            .filter(|next| *next > self.now)
            .min()
    }

    /// Whether another claim held one of the gates.
    pub fn contended(&self) -> bool {
        self.rooms.values().any(|room| !room.locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill() -> Gate {
        Gate::Skill(SkillId::new(101).expect("id"))
    }

    fn agent() -> Gate {
        Gate::Agent(AgentId::new(7).expect("id"))
    }

    fn reading(in_flight: u32, max: Option<u32>) -> GateReading {
        GateReading {
            locked: true,
            in_flight,
            max_in_flight: max,
            max_per_minute: None,
            next_at: None,
        }
    }

    #[test]
    fn gates_encode_as_signed_ids() {
        for gate in [skill(), agent()] {
            assert_eq!(Gate::decode(gate.encode()), Ok(gate));
        }
        assert_eq!(agent().encode(), -7);
    }

    #[test]
    fn in_flight_caps_let_through_only_the_room_left_at_every_gate() {
        let now = Utc::now();
        let mut pacer = Pacer::new(
            now,
            [
                (skill(), reading(18, Some(20))),
                (agent(), reading(0, Some(1))),
            ],
        );
        assert_eq!(pacer.room(skill()), Some(2));
        assert_eq!(pacer.admit(&[skill(), agent()]), Admission::Go);
        assert_eq!(
            pacer.admit(&[skill(), agent()]),
            Admission::Hold(agent()),
            "the agent has one in flight now"
        );
        assert_eq!(pacer.admit(&[skill()]), Admission::Go);
        assert_eq!(pacer.admit(&[skill()]), Admission::Hold(skill()));
        assert_eq!(
            pacer.admit(&[]),
            Admission::Go,
            "an unpaced callback always goes"
        );
    }

    #[test]
    fn a_gate_another_claim_holds_makes_its_callbacks_wait() {
        let mut pacer = Pacer::new(
            Utc::now(),
            [(
                skill(),
                GateReading {
                    locked: false,
                    ..reading(0, Some(5))
                },
            )],
        );
        assert_eq!(pacer.room(skill()), Some(0));
        assert_eq!(pacer.admit(&[skill()]), Admission::Wait);
        assert!(pacer.contended());
    }

    #[test]
    fn a_rate_is_spread_evenly_with_at_most_a_seconds_catch_up() {
        let now = Utc::now();
        let per_minute = |next_at| GateReading {
            max_per_minute: Some(120),
            next_at,
            ..reading(0, None)
        };
        // Quiet for an hour: a second's worth (2 at 120/min) goes at once, then none.
        let mut pacer = Pacer::new(now, [(skill(), per_minute(Some(now - Duration::hours(1))))]);
        assert_eq!(pacer.room(skill()), Some(3));
        let gone = (0..10)
            .filter(|_| pacer.admit(&[skill()]) == Admission::Go)
            .count();
        assert_eq!(gone, 3, "now - 1 s, now - 0.5 s, now");
        let (_, next) = pacer.rate_updates()[0];
        assert_eq!(next, now + Duration::milliseconds(500));
        assert_eq!(
            pacer.next_rate_at(),
            Some(now + Duration::milliseconds(500))
        );
        // Its next time still to come: nothing yet.
        let mut pacer = Pacer::new(
            now,
            [(skill(), per_minute(Some(now + Duration::seconds(1))))],
        );
        assert_eq!(pacer.admit(&[skill()]), Admission::Hold(skill()));
        assert!(pacer.rate_updates().is_empty());
    }
}
