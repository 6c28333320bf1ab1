//! A pass's plan: from the claimed candidates, their gates' readings (the `Pacer`) and the
//! claim's clock, which callbacks to publish, hold at a gate, defer or end. Pure: it only
//! sequences the domain's decisions — `dispatch_window` (suppression, calling hours), then
//! `Pacer::admit` (capacity) — and sorts them into what the store records; the pass around it
//! does the I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::CONTENDED_PAUSE;
use crate::domain::{
    Admission, CallbackId, DispatchWindow, Gate, Pacer, PacingDefaults, Route, SkillId,
    dispatch_window, gates_of, offer,
};
use crate::store::{Deferral, Due, Ending};

/// The settings a plan reads: the zone for contacts and skills without one, and the pacing
/// limits where a skill or an agent sets none.
#[derive(Debug, Clone, Copy)]
pub struct Planner {
    pub default_zone: Tz,
    pub pacing: PacingDefaults,
}

/// What one pass does with its candidates. A candidate in none of the lists waits, as it is,
/// for the next pass: another claim holds one of its gates.
#[derive(Debug)]
pub struct Plan<'a> {
    /// Inside their calling hours and admitted by every gate, in due order, each with the
    /// route it goes on.
    pub publish: Vec<(&'a Due, Route)>,
    /// Over a gate's limit: stay pending, held at that gate. Those held for the first time
    /// come first (`newly_held` of them), so the report can name them without a second list.
    hold: Vec<(CallbackId, Gate)>,
    newly_held: usize,
    /// Outside their calling hours: due again at the next opening.
    pub defer: Vec<Deferral>,
    /// Never to be published: suppressed, expiring before the hours open, or hours that
    /// never open.
    pub end: Vec<Ending>,
    /// Rate-paced skills whose rate this plan used, with their next publication time.
    pub rate_updates: Vec<(SkillId, DateTime<Utc>)>,
    /// When pacing wants the next pass: at the next rate-paced room, or after a short pause
    /// if another claim held a gate (it commits within a batch's time).
    pub wake: Option<Duration>,
}

impl<'a> Plan<'a> {
    /// The callbacks it publishes, in order.
    #[cfg(test)]
    pub fn published(&self) -> impl Iterator<Item = &'a Due> + '_ {
        self.publish.iter().map(|(due, _)| *due)
    }

    /// Every callback held at a gate, as the store records them.
    pub fn hold(&self) -> &[(CallbackId, Gate)] {
        &self.hold
    }

    /// The callbacks held for the first time in this plan (counted and logged once).
    pub fn newly_held(&self) -> &[(CallbackId, Gate)] {
        &self.hold[..self.newly_held]
    }

    fn push_hold(&mut self, id: CallbackId, gate: Gate, first: bool) {
        self.hold.push((id, gate));
        if first {
            // Swapping keeps the first holds at the front; the store does not care about the
            // order it marks held rows in.
            let last = self.hold.len() - 1;
            self.hold.swap(self.newly_held, last);
            self.newly_held += 1;
        }
    }
}

impl Planner {
    pub fn new(default_zone: Tz, pacing: PacingDefaults) -> Self {
        Self {
            default_zone,
            pacing,
        }
    }

    /// The gates a callback's publication on `route` must pass.
    pub fn gates(&self, due: &Due, route: Route) -> Vec<Gate> {
        gates_of(
            route,
            due.callback.skill_id,
            due.skill.policy.pacing(&self.pacing),
            &self.pacing,
        )
    }

    /// The gates a pass must read to decide a callback: those of its route, or of every
    /// route it may take when it chooses among preferred agents.
    pub fn gates_to_read(&self, due: &Due) -> Vec<Gate> {
        if !due.callback.chooses_agent() {
            return self.gates(due, due.callback.route());
        }
        let mut gates = self.gates(due, Route::Skill(due.callback.skill_id));
        for agent in &due.active_agents {
            gates.extend(self.gates(due, Route::Agent(*agent)));
        }
        gates
    }

    /// Asks the pacer to admit a callback: on its route, or offered to its preferred agents
    /// in order ([`offer`]).
    fn admit(&self, due: &Due, pacer: &mut Pacer) -> (Admission, Route) {
        if due.callback.chooses_agent() {
            offer(&due.active_agents, due.callback.skill_id, pacer, |route| {
                self.gates(due, route)
            })
        } else {
            let route = due.callback.route();
            (pacer.admit(&self.gates(due, route)), route)
        }
    }

    /// Decides every candidate at `now` (the claim's database clock). `candidates` must be in
    /// due order, the order the pacer gives room in; `pacer` holds the readings of their gates.
    pub fn plan<'a>(
        &self,
        candidates: &'a [Due],
        mut pacer: Pacer,
        now: DateTime<Utc>,
    ) -> Plan<'a> {
        let mut plan = Plan {
            publish: Vec::with_capacity(candidates.len()),
            hold: Vec::new(),
            newly_held: 0,
            defer: Vec::new(),
            end: Vec::new(),
            rate_updates: Vec::new(),
            wake: None,
        };
        for due in candidates {
            let id = due.callback.id;
            match dispatch_window(
                &due.callback,
                &due.skill,
                due.suppression.as_ref(),
                now,
                self.default_zone,
            ) {
                DispatchWindow::Publish => match self.admit(due, &mut pacer) {
                    (Admission::Go, route) => plan.publish.push((due, route)),
                    (Admission::Hold(gate), _) => {
                        plan.push_hold(id, gate, due.paced_since.is_none())
                    }
                    (Admission::Wait, _) => {}
                },
                DispatchWindow::Defer { until, reason } => {
                    plan.defer.push(Deferral { id, until, reason })
                }
                DispatchWindow::End { state, reason } => {
                    plan.end.push(Ending { id, state, reason })
                }
            }
        }
        plan.rate_updates = pacer.rate_updates();
        plan.wake = wake(&pacer, now);
        plan
    }
}

/// How many held callbacks to take from each gate holding some: as many as it has room for
/// (its other gates may still hold them), at most a batch; none from a gate without room.
pub fn takes(held_gates: &[Gate], pacer: &Pacer, batch: u32) -> Vec<(Gate, u32)> {
    held_gates
        .iter()
        .map(|gate| (*gate, pacer.room(*gate).unwrap_or(batch).min(batch)))
        .filter(|(_, room)| *room > 0)
        .collect()
}

/// When pacing wants the next pass, from the pacer after it admitted a plan's candidates.
fn wake(pacer: &Pacer, now: DateTime<Utc>) -> Option<Duration> {
    let rate = pacer.next_rate_at().and_then(|at| (at - now).to_std().ok());
    let contended = pacer.contended().then_some(CONTENDED_PAUSE);
    match (rate, contended) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration as Span;

    use super::*;
    use crate::domain::{
        AgentId, Callback, CallbackState, CallingHours, Direction, GateReading, MediaType,
        PhoneNumber, Skill, SkillPolicy, Suppression,
    };

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    /// Wednesday 15:00 UTC.
    fn wednesday_afternoon() -> DateTime<Utc> {
        utc("2026-11-25T15:00:00Z")
    }

    fn weekdays() -> CallingHours {
        serde_json::from_value(serde_json::json!({
            "mon": ["08:00-21:00"], "tue": ["08:00-21:00"], "wed": ["08:00-21:00"],
            "thu": ["08:00-21:00"], "fri": ["08:00-21:00"]
        }))
        .expect("valid hours")
    }

    fn skill(id: i64, policy: SkillPolicy) -> Skill {
        Skill {
            id: SkillId::new(id).expect("id"),
            name: format!("skill {id}"),
            media_type: MediaType::Phone,
            direction: Direction::Outbound,
            active: true,
            time_zone: None,
            policy,
        }
    }

    fn capped(id: i64, max_in_flight: u32) -> Skill {
        skill(
            id,
            SkillPolicy {
                max_in_flight: Some(max_in_flight),
                ..SkillPolicy::default()
            },
        )
    }

    fn due(skill: &Skill, due_at: DateTime<Utc>) -> Due {
        Due {
            callback: Callback {
                id: CallbackId::generate(),
                number: 1,
                state: CallbackState::Pending,
                first_name: "Ada".into(),
                last_name: "Lovelace".into(),
                phone_number: PhoneNumber::from_stored("+442079460958".into()),
                skill_id: skill.id,
                target_agent_id: None,
                target_agent_ids: Vec::new(),
                ownership_seconds: None,
                notes: String::new(),
                time_zone: None,
                scheduled_for: due_at,
                due_at,
                attempt: 0,
                dispatched_at: None,
                last_error: None,
                created_by: "test".into(),
                created_at: due_at,
                updated_at: due_at,
                expires_at: None,
                dial_failures: 0,
                last_outcome: None,
                fallback_due_at: None,
                fell_back_at: None,
                caller_id: None,
                orig_number: None,
                priority: 0,
            },
            skill: skill.clone(),
            active_agents: Vec::new(),
            suppression: None,
            paced_since: None,
        }
    }

    /// `n` callbacks of `skill`, due a minute apart, oldest first.
    fn batch(skill: &Skill, n: i64, now: DateTime<Utc>) -> Vec<Due> {
        (0..n)
            .map(|i| due(skill, now - Span::minutes(n - i)))
            .collect()
    }

    fn reading(in_flight: u32, max_in_flight: Option<u32>) -> GateReading {
        GateReading {
            locked: true,
            in_flight,
            max_in_flight,
            max_per_minute: None,
            next_at: None,
        }
    }

    fn gate(skill: &Skill) -> Gate {
        Gate::Skill(skill.id)
    }

    fn planner() -> Planner {
        Planner::new(Tz::UTC, PacingDefaults::default())
    }

    fn ids<'a>(dues: impl IntoIterator<Item = &'a Due>) -> Vec<CallbackId> {
        dues.into_iter().map(|d| d.callback.id).collect()
    }

    #[test]
    fn due_inside_calling_hours_is_published() {
        let now = wednesday_afternoon();
        let sales = skill(
            1,
            SkillPolicy {
                calling_hours: Some(weekdays()),
                ..SkillPolicy::default()
            },
        );
        let candidates = vec![due(&sales, now - Span::seconds(1))];
        let plan = planner().plan(&candidates, Pacer::new(now, []), now);
        assert_eq!(ids(plan.published()), ids(&candidates));
        assert!(plan.hold().is_empty() && plan.defer.is_empty() && plan.end.is_empty());
        assert!(plan.rate_updates.is_empty());
        assert_eq!(plan.wake, None);
    }

    #[test]
    fn due_outside_calling_hours_is_deferred_to_the_next_opening_without_taking_room() {
        // Wednesday 22:00 UTC: closed until Thursday 08:00.
        let now = utc("2026-11-25T22:00:00Z");
        let paced = skill(
            1,
            SkillPolicy {
                calling_hours: Some(weekdays()),
                max_per_minute: Some(60),
                ..SkillPolicy::default()
            },
        );
        let candidates = vec![due(&paced, now - Span::minutes(5))];
        let pacer = Pacer::new(
            now,
            [(
                gate(&paced),
                GateReading {
                    max_per_minute: Some(60),
                    ..reading(0, None)
                },
            )],
        );
        let plan = planner().plan(&candidates, pacer, now);
        assert!(plan.publish.is_empty() && plan.end.is_empty() && plan.hold().is_empty());
        let [deferral] = plan.defer.as_slice() else {
            panic!("one deferral: {plan:?}");
        };
        assert_eq!(deferral.id, candidates[0].callback.id);
        assert_eq!(deferral.until, utc("2026-11-26T08:00:00Z"));
        assert!(
            deferral
                .reason
                .starts_with("outside the calling hours of skill 1"),
            "{}",
            deferral.reason
        );
        assert!(
            plan.rate_updates.is_empty(),
            "a deferred callback uses none of its skill's rate"
        );
    }

    #[test]
    fn one_that_would_expire_before_the_hours_open_or_whose_hours_never_open_is_ended() {
        // The claim never takes a callback already past its expiry; the plan ends the ones
        // that would pass it while waiting for the hours to open.
        let now = utc("2026-11-25T22:00:00Z");
        let evenings = skill(
            1,
            SkillPolicy {
                calling_hours: Some(weekdays()),
                ..SkillPolicy::default()
            },
        );
        let never = skill(
            2,
            SkillPolicy {
                calling_hours: Some(CallingHours::default()),
                ..SkillPolicy::default()
            },
        );
        let mut expiring = due(&evenings, now - Span::minutes(2));
        expiring.callback.expires_at = Some(utc("2026-11-26T07:59:00Z"));
        let candidates = vec![expiring, due(&never, now - Span::minutes(1))];
        let plan = planner().plan(&candidates, Pacer::new(now, []), now);
        assert!(plan.publish.is_empty() && plan.defer.is_empty() && plan.hold().is_empty());
        let ended: Vec<(CallbackId, CallbackState)> =
            plan.end.iter().map(|e| (e.id, e.state)).collect();
        assert_eq!(
            ended,
            [
                (candidates[0].callback.id, CallbackState::Expired),
                (candidates[1].callback.id, CallbackState::Failed),
            ]
        );
        assert!(
            plan.end[0].reason.contains("expires before"),
            "{}",
            plan.end[0].reason
        );
    }

    #[test]
    fn a_suppressed_number_is_ended_and_leaves_its_gate_room_to_the_next() {
        let now = wednesday_afternoon();
        let sales = capped(1, 1);
        let mut candidates = batch(&sales, 2, now);
        candidates[0].suppression = Some(Suppression {
            skill_id: None,
            reason: "asked not to be called".into(),
        });
        let pacer = Pacer::new(now, [(gate(&sales), reading(0, Some(1)))]);
        let plan = planner().plan(&candidates, pacer, now);
        let [ending] = plan.end.as_slice() else {
            panic!("one ending: {plan:?}");
        };
        assert_eq!(ending.id, candidates[0].callback.id);
        assert_eq!(ending.state, CallbackState::Suppressed);
        assert!(
            ending.reason.contains("do-not-call") && ending.reason.contains("asked not to"),
            "{}",
            ending.reason
        );
        assert_eq!(ids(plan.published()), ids(&candidates[1..]));
        assert!(plan.hold().is_empty());
    }

    #[test]
    fn a_full_gate_holds_its_callbacks_and_names_only_the_newly_held() {
        let now = wednesday_afternoon();
        let sales = capped(1, 5);
        let mut candidates = batch(&sales, 2, now);
        candidates[0].paced_since = Some(now - Span::minutes(10));
        let pacer = Pacer::new(now, [(gate(&sales), reading(5, Some(5)))]);
        let plan = planner().plan(&candidates, pacer, now);
        assert!(plan.publish.is_empty() && plan.defer.is_empty() && plan.end.is_empty());
        let mut held = plan.hold().to_vec();
        held.sort();
        let mut expected: Vec<_> = candidates
            .iter()
            .map(|d| (d.callback.id, gate(&sales)))
            .collect();
        expected.sort();
        assert_eq!(held, expected);
        assert_eq!(
            plan.newly_held(),
            [(candidates[1].callback.id, gate(&sales))],
            "the one held before is not counted again"
        );
    }

    #[test]
    fn a_gate_with_room_for_k_publishes_the_oldest_k_in_due_order_and_holds_the_rest() {
        let now = wednesday_afternoon();
        let sales = capped(1, 5);
        let candidates = batch(&sales, 5, now);
        let pacer = Pacer::new(now, [(gate(&sales), reading(3, Some(5)))]);
        let plan = planner().plan(&candidates, pacer, now);
        assert_eq!(ids(plan.published()), ids(&candidates[..2]));
        let held: Vec<CallbackId> = plan.hold().iter().map(|(id, _)| *id).collect();
        assert_eq!(held, ids(&candidates[2..]));
        assert!(plan.hold().iter().all(|(_, g)| *g == gate(&sales)));
        assert_eq!(plan.newly_held().len(), 3);
        assert_eq!(plan.wake, None);
    }

    #[test]
    fn a_gate_another_claim_holds_leaves_its_callbacks_for_the_next_pass() {
        let now = wednesday_afternoon();
        let sales = capped(1, 5);
        let candidates = batch(&sales, 2, now);
        let pacer = Pacer::new(
            now,
            [(
                gate(&sales),
                GateReading {
                    locked: false,
                    ..reading(0, None)
                },
            )],
        );
        let plan = planner().plan(&candidates, pacer, now);
        assert!(plan.publish.is_empty() && plan.hold().is_empty());
        assert!(plan.defer.is_empty() && plan.end.is_empty());
        assert_eq!(plan.wake, Some(CONTENDED_PAUSE));
    }

    #[test]
    fn a_rate_paced_gate_spaces_publications_and_wakes_the_pass_for_the_next() {
        let now = wednesday_afternoon();
        let paced = skill(
            1,
            SkillPolicy {
                max_per_minute: Some(60),
                ..SkillPolicy::default()
            },
        );
        let candidates = batch(&paced, 3, now);
        let pacer = Pacer::new(
            now,
            [(
                gate(&paced),
                GateReading {
                    max_per_minute: Some(60),
                    next_at: Some(now),
                    ..reading(0, None)
                },
            )],
        );
        let plan = planner().plan(&candidates, pacer, now);
        assert_eq!(ids(plan.published()), ids(&candidates[..1]));
        assert_eq!(plan.hold().len(), 2);
        assert_eq!(plan.rate_updates, [(paced.id, now + Span::seconds(1))]);
        assert_eq!(plan.wake, Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_mixed_batch_sorts_each_callback_into_its_own_list() {
        let now = wednesday_afternoon();
        let open = skill(1, SkillPolicy::default());
        let saturdays = skill(
            2,
            SkillPolicy {
                calling_hours: Some(
                    serde_json::from_value(serde_json::json!({"sat": ["09:00-17:00"]}))
                        .expect("valid hours"),
                ),
                ..SkillPolicy::default()
            },
        );
        let one_at_a_time = capped(3, 1);
        let agent = AgentId::new(7).expect("id");
        let at = |minutes| now - Span::minutes(minutes);

        let publish_a = due(&open, at(6));
        let defer_b = due(&saturdays, at(5));
        let publish_c = due(&one_at_a_time, at(4));
        let mut end_d = due(&open, at(3));
        end_d.suppression = Some(Suppression {
            skill_id: Some(open.id),
            reason: String::new(),
        });
        let hold_e = due(&one_at_a_time, at(2));
        let mut hold_f = due(&open, at(1));
        hold_f.callback.target_agent_id = Some(agent);
        let candidates = vec![publish_a, defer_b, publish_c, end_d, hold_e, hold_f];

        let planner = Planner::new(
            Tz::UTC,
            PacingDefaults {
                agent_max_in_flight: Some(1),
                ..PacingDefaults::default()
            },
        );
        let pacer = Pacer::new(
            now,
            [
                (gate(&one_at_a_time), reading(0, Some(1))),
                (Gate::Agent(agent), reading(1, Some(1))),
            ],
        );
        let plan = planner.plan(&candidates, pacer, now);
        let id = |i: usize| candidates[i].callback.id;
        assert_eq!(ids(plan.published()), [id(0), id(2)]);
        let deferred: Vec<_> = plan.defer.iter().map(|d| (d.id, d.until)).collect();
        assert_eq!(deferred, [(id(1), utc("2026-11-28T09:00:00Z"))]);
        let ended: Vec<_> = plan.end.iter().map(|e| (e.id, e.state)).collect();
        assert_eq!(ended, [(id(3), CallbackState::Suppressed)]);
        assert_eq!(
            plan.hold(),
            [(id(4), gate(&one_at_a_time)), (id(5), Gate::Agent(agent))]
        );
        assert_eq!(plan.newly_held(), plan.hold());
        assert!(plan.rate_updates.is_empty());
        assert_eq!(plan.wake, None);
    }

    #[test]
    fn held_callbacks_are_taken_up_to_each_gates_room_and_at_most_a_batch() {
        let now = wednesday_afternoon();
        let [roomy, full, contended, unlimited] =
            [1, 2, 3, 4].map(|id| Gate::Skill(SkillId::new(id).expect("id")));
        let pacer = Pacer::new(
            now,
            [
                (roomy, reading(2, Some(5))),
                (full, reading(5, Some(5))),
                (
                    contended,
                    GateReading {
                        locked: false,
                        ..reading(0, Some(5))
                    },
                ),
                (unlimited, reading(0, None)),
            ],
        );
        let held = [roomy, full, contended, unlimited];
        assert_eq!(takes(&held, &pacer, 10), [(roomy, 3), (unlimited, 10)]);
        assert_eq!(takes(&held, &pacer, 2), [(roomy, 2), (unlimited, 2)]);
    }
}
