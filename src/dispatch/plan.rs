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
    Admission, CallbackId, DispatchWindow, Gate, Pacer, PacingDefaults, SkillId, dispatch_window,
    gates_of,
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
    /// Inside their calling hours and admitted by every gate, in due order.
    pub publish: Vec<&'a Due>,
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

impl Plan<'_> {
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

    /// The gates a callback's publication must pass.
    pub fn gates(&self, due: &Due) -> Vec<Gate> {
        gates_of(
            &due.callback,
            due.skill.policy.pacing(&self.pacing),
            &self.pacing,
        )
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
                DispatchWindow::Publish => match pacer.admit(&self.gates(due)) {
                    Admission::Go => plan.publish.push(due),
                    Admission::Hold(gate) => plan.push_hold(id, gate, due.paced_since.is_none()),
                    Admission::Wait => {}
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
