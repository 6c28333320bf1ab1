//! The directory callbacks are routed by: skills (with their policy and capacity) and agents.
//! Agents serve every skill, so only a user free of skill restrictions may change them.

use super::{App, AppError, require, require_skill};
use crate::domain::{
    Agent, AgentId, AgentInput, Permission, SecurityUser, Skill, SkillId, SkillInput, SkillPacing,
};
use crate::store::{ImportSummary, Store};

/// Creates or replaces a skill.
pub async fn put_skill(
    app: &App,
    user: &SecurityUser,
    id: SkillId,
    input: SkillInput,
) -> Result<Skill, AppError> {
    require(user, Permission::DirectoryWrite)?;
    require_skill(user, id)?;
    let mut skill = input
        .into_skill(Some(id))
        .map_err(|e| AppError::unacceptable(e.to_string()))?;
    skill.policy.calendar =
        super::calendars::check_assigned(app, skill.policy.routing.calendar.as_deref()).await?;
    app.store.upsert_skill(&skill).await?;
    tracing::info!(skill_id = id.get(), active = skill.active, security_user = %user.name, "skill stored");
    Ok(skill)
}

/// Replaces a skill's pacing limits only; every daemon applies them from its next pass.
pub async fn set_capacity(
    app: &App,
    user: &SecurityUser,
    id: SkillId,
    limits: SkillPacing,
) -> Result<Skill, AppError> {
    require(user, Permission::DirectoryWrite)?;
    require_skill(user, id)?;
    limits
        .check()
        .map_err(|e| AppError::unacceptable(e.to_string()))?;
    let skill = app
        .store
        .set_capacity(id, limits)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("skill {id} does not exist")))?;
    tracing::info!(skill_id = id.get(), max_in_flight = limits.max_in_flight,
        max_per_minute = limits.max_per_minute, security_user = %user.name, "skill capacity set");
    Ok(skill)
}

/// Activates or deactivates a skill.
pub async fn set_skill_active(
    app: &App,
    user: &SecurityUser,
    id: SkillId,
    active: bool,
) -> Result<(), AppError> {
    require(user, Permission::DirectoryWrite)?;
    if !user.may_use_skill(id) || !app.store.set_skill_active(id, active).await? {
        return Err(AppError::NotFound(format!("skill {id} does not exist")));
    }
    tracing::info!(skill_id = id.get(), active, security_user = %user.name, "skill stored");
    Ok(())
}

/// Creates or replaces an agent.
pub async fn put_agent(
    app: &App,
    user: &SecurityUser,
    id: AgentId,
    input: AgentInput,
) -> Result<Agent, AppError> {
    require(user, Permission::DirectoryWrite)?;
    require_every_skill(user, "agents")?;
    let agent = input
        .into_agent(Some(id))
        .map_err(|e| AppError::unacceptable(e.to_string()))?;
    app.store.upsert_agent(&agent).await?;
    tracing::info!(agent_id = id.get(), active = agent.active, security_user = %user.name, "agent stored");
    Ok(agent)
}

/// Activates or deactivates an agent.
pub async fn set_agent_active(
    app: &App,
    user: &SecurityUser,
    id: AgentId,
    active: bool,
) -> Result<(), AppError> {
    require(user, Permission::DirectoryWrite)?;
    require_every_skill(user, "agents")?;
    if !app.store.set_agent_active(id, active).await? {
        return Err(AppError::NotFound(format!("agent {id} does not exist")));
    }
    tracing::info!(agent_id = id.get(), active, security_user = %user.name, "agent stored");
    Ok(())
}

/// Stores a validated directory file in one transaction (the operator's `import`, which
/// needs nothing but the database); `written` hears how many rows are stored so far.
pub async fn import(
    store: &Store,
    skills: &[Skill],
    agents: &[Agent],
    written: impl FnMut(usize),
) -> Result<ImportSummary, AppError> {
    // The operator's command reports what it stored; a log line would only repeat it.
    Ok(store
        .import_directory_reporting(skills, agents, written)
        .await?)
}

/// An agent takes callbacks of every skill it is routed, so a user restricted to some skills
/// may not rename or deactivate one.
pub(super) fn require_every_skill(user: &SecurityUser, what: &str) -> Result<(), AppError> {
    if user.skills.is_none() {
        Ok(())
    } else {
        Err(AppError::Denied(format!(
            "security user `{}` is restricted to some skills; only a user of every skill may change {what}",
            user.name
        )))
    }
}

/// Pauses a skill's dispatch (a site outage, a storm, a campaign pulled): its due
/// callbacks stay pending, held at its gate, until it is resumed; every daemon sees it at
/// its next pass. Returns the skill and how many of its callbacks are due within the hour.
pub async fn pause_skill(
    app: &App,
    user: &SecurityUser,
    id: SkillId,
    reason: Option<&str>,
) -> Result<(Skill, i64), AppError> {
    set_paused(app, user, id, reason, true).await
}

/// Resumes a paused skill's dispatch: its held callbacks go out, highest priority then
/// oldest first, through its pacing.
pub async fn resume_skill(
    app: &App,
    user: &SecurityUser,
    id: SkillId,
    reason: Option<&str>,
) -> Result<(Skill, i64), AppError> {
    set_paused(app, user, id, reason, false).await
}

/// A reason is required to pause, optional to resume.
async fn set_paused(
    app: &App,
    user: &SecurityUser,
    id: SkillId,
    reason: Option<&str>,
    pause: bool,
) -> Result<(Skill, i64), AppError> {
    require(user, Permission::DirectoryWrite)?;
    require_skill(user, id)?;
    let reason = crate::domain::check_reason(reason, pause)?.unwrap_or_default();
    let exists = if pause {
        app.store.pause_skill(id, &user.name, &reason).await?
    } else {
        app.store.resume_skill(id, &user.name, &reason).await?
    };
    let not_found = || AppError::NotFound(format!("skill {id} does not exist"));
    if !exists {
        return Err(not_found());
    }
    let due = app.store.due_next_hour(id).await?;
    tracing::warn!(skill_id = id.get(), due_next_hour = due, reason = %reason, paused = pause,
        security_user = %user.name, "skill dispatch {}", if pause { "paused" } else { "resumed" });
    let skill = app.store.skill(id).await?.ok_or_else(not_found)?;
    Ok((skill, due))
}
