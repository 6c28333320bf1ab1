//! Changing a filtered selection at once: the form states how many callbacks will change (a
//! dry run) and asks for confirmation before it changes anything. The change itself is the
//! API's bulk change: each pending callback under its own lock, through the same rules.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Viewer;
use super::layout::{check_csrf, failure, forbidden, form, page, status_of};
use super::names::{Names, PickedAgents};
use crate::app::{self, App, AppError, BulkAction, BulkChange, BulkReport};
use crate::domain::{Permission, RawId, SkillId};

/// The selection, carried from the list to the form and back.
#[derive(Deserialize, Default, Clone)]
pub struct Selection {
    /// `failed` or `expired` (to retry them); anything else: pending callbacks.
    #[serde(default)]
    state: Option<String>,
    #[serde(default, rename = "skillId")]
    skill_id: Option<String>,
    #[serde(default, rename = "dueAfter")]
    due_after: Option<String>,
    #[serde(default, rename = "dueBefore")]
    due_before: Option<String>,
}

impl Selection {
    /// The state selected: failed or expired ones to retry, else pending ones.
    fn state(&self) -> &'static str {
        match self.state.as_deref() {
            Some("failed") => "failed",
            Some("expired") => "expired",
            _ => "pending",
        }
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_ref().filter(|v| !v.trim().is_empty()).cloned()
}

fn hidden_selection(s: &Selection) -> Markup {
    html! {
        input type="hidden" name="state" value=(s.state());
        input type="hidden" name="skillId" value=(s.skill_id.as_deref().unwrap_or_default());
        input type="hidden" name="dueAfter" value=(s.due_after.as_deref().unwrap_or_default());
        input type="hidden" name="dueBefore" value=(s.due_before.as_deref().unwrap_or_default());
    }
}

fn describe(s: &Selection, names: &Names) -> String {
    let mut parts = vec![format!("{} callbacks", s.state())];
    if let Some(skill) = non_empty(&s.skill_id) {
        let shown = skill
            .parse::<i64>()
            .map_or_else(|_| format!("skill {skill}"), |id| names.skill(id));
        parts.push(format!("of {shown}"));
    }
    if let Some(after) = non_empty(&s.due_after) {
        parts.push(format!("due from {after}"));
    }
    if let Some(before) = non_empty(&s.due_before) {
        parts.push(format!("due before {before}"));
    }
    parts.join(" ")
}

pub async fn bulk_form(
    State(state): State<App>,
    viewer: Viewer,
    Query(selection): Query<Selection>,
) -> Response {
    if !viewer.may(Permission::CallbacksUpdate) && !viewer.may(Permission::CallbacksCancel) {
        return forbidden("this security user may not change callbacks");
    }
    let names = match Names::load(&state.store).await {
        Ok(names) => names,
        Err(e) => return failure(e),
    };
    let skill = non_empty(&selection.skill_id).and_then(|s| s.parse::<SkillId>().ok());
    let retrying = selection.state() != "pending";
    page(
        "Change many",
        Some(&viewer),
        html! {
            h1 { "Change many" }
            p { "Selection: " strong #selection { (describe(&selection, &names)) } }
            form #bulk method="post" action="/console/bulk" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                (hidden_selection(&selection))
                label for="action" { "Action" }
                select #action name="action" {
                    @if retrying {
                        @if viewer.may(Permission::CallbacksUpdate) { option value="retry" { "Retry" } }
                    } @else {
                        @if viewer.may(Permission::CallbacksCancel) { option value="cancel" { "Cancel" } }
                        @if viewer.may(Permission::CallbacksUpdate) {
                            option value="reschedule" { "Reschedule" }
                            option value="reassign" { "Reassign" }
                        }
                    }
                }
                @if retrying {
                    label for="when" { "When to try again (in each contact's zone; empty: now)" }
                } @else {
                    label for="when" { "New date and time (reschedule; in each contact's zone)" }
                }
                input #when type="datetime-local" name="when";
                @if !retrying {
                    p.muted { "Reassign: choose the preferred agents below (none: back to the skill's queue)." }
                    (names.picker(skill, &[]))
                }
                label for="reason" { "Reason (required)" }
                input #reason type="text" name="reason" required maxlength="500";
                p { button type="submit" { "Count, then confirm" } }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    selection: SelectionFields,
    action: String,
    #[serde(default)]
    when: Option<String>,
    #[serde(flatten)]
    agents: PickedAgents,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    confirm: Option<String>,
}

/// `Selection` as flattened form fields (serde's flatten needs owned field types).
#[derive(Deserialize, Default, Clone)]
pub struct SelectionFields {
    #[serde(default)]
    state: Option<String>,
    #[serde(default, rename = "skillId")]
    skill_id: Option<String>,
    #[serde(default, rename = "dueAfter")]
    due_after: Option<String>,
    #[serde(default, rename = "dueBefore")]
    due_before: Option<String>,
}

pub async fn bulk(State(state): State<App>, viewer: Viewer, body: Bytes) -> Response {
    let sent: BulkForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&viewer, &sent.csrf) {
        return r.into_response();
    }
    let action = match sent.action.as_str() {
        "cancel" => BulkAction::Cancel,
        "reschedule" => BulkAction::Reschedule,
        "reassign" => BulkAction::Reassign,
        "retry" => BulkAction::Retry,
        other => {
            return (StatusCode::BAD_REQUEST, format!("unknown action `{other}`")).into_response();
        }
    };
    let selection = Selection {
        state: sent.selection.state.clone(),
        skill_id: sent.selection.skill_id.clone(),
        due_after: sent.selection.due_after.clone(),
        due_before: sent.selection.due_before.clone(),
    };
    let confirmed = sent.confirm.as_deref() == Some("yes");
    let skill_id = non_empty(&selection.skill_id);
    let due_before = non_empty(&selection.due_before);
    let due_after = non_empty(&selection.due_after);
    let names = match Names::load(&state.store).await {
        Ok(names) => names,
        Err(e) => return failure(e),
    };
    let agents = sent.agents.ids(&names);
    let request = BulkChange {
        action,
        selection: app::Selection {
            state: Some(selection.state()),
            skill_id: skill_id.as_deref(),
            agent_id: None,
            due_before: due_before.as_deref(),
            due_after: due_after.as_deref(),
            ..app::Selection::default()
        },
        reason: sent.reason.as_deref(),
        schedule_date: non_empty(&sent.when),
        time_zone: None,
        target_agent_id: None,
        target_agent_ids: (action == BulkAction::Reassign)
            .then(|| agents.iter().cloned().map(RawId).collect()),
        priority: None,
        dry_run: !confirmed,
    };
    let answer: BulkReport = match app::change_many(&state, &viewer.user, request, None).await {
        Ok(answer) => answer,
        Err(e @ AppError::Store(_)) => return failure(e),
        Err(e) => {
            return (
                status_of(&e),
                page(
                    "Not changed",
                    Some(&viewer),
                    html! {
                        h1 { "Not changed" }
                        p.error role="alert" { (e.code().as_str()) ": " (e.to_string()) }
                        p { a href="/console/callbacks" { "Back to the callbacks" } }
                    },
                ),
            )
                .into_response();
        }
    };
    let verb = match action {
        BulkAction::Cancel => "cancelled",
        BulkAction::Reschedule => "rescheduled",
        BulkAction::Reassign => "reassigned",
        BulkAction::Reprioritize => "reprioritized",
        BulkAction::Retry => "retried",
    };
    page(
        if confirmed { "Changed" } else { "Confirm" },
        Some(&viewer),
        html! {
            @if confirmed {
                h1 { "Done" }
                p #outcome data-changed=(answer.changed) data-skipped=(answer.skipped) {
                    (answer.changed) " callbacks " (verb) "; " (answer.skipped) " skipped."
                }
                @if !answer.refused.is_empty() {
                    h2 { "Refused" }
                    ul { @for r in &answer.refused { li { code { (r.callback_id) } " " (r.result.as_str()) ": " (r.message) } } }
                }
                p { a href="/console/callbacks" { "Back to the callbacks" } }
            } @else {
                h1 { "Confirm" }
                p #confirm-count data-count=(answer.changed) {
                    strong { (answer.changed) } " " (describe(&selection, &names)) " will be " (verb)
                    " (reason: “" (sent.reason.as_deref().unwrap_or_default()) "”)."
                }
                form #bulk-confirm method="post" action="/console/bulk" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    (hidden_selection(&selection))
                    input type="hidden" name="action" value=(sent.action);
                    input type="hidden" name="when" value=(sent.when.as_deref().unwrap_or_default());
                    input type="hidden" name="agent" value=(agents.join(","));
                    input type="hidden" name="reason" value=(sent.reason.as_deref().unwrap_or_default());
                    input type="hidden" name="confirm" value="yes";
                    p { button.danger type="submit" { "Yes, change " (answer.changed) } " " a href="/console/callbacks" { "No, go back" } }
                }
            }
        },
    )
    .into_response()
}
