//! Reports: whether promises were kept, per skill and day or hour, for readers of
//! callbacks (within their skills).

use chrono::Utc;

use super::{App, AppError, require, require_skill};
use crate::domain::{
    Permission, PromiseRow, ReportInput, ReportRange, SecurityUser, SkillId, Tally,
};

pub async fn promises(
    app: &App,
    user: &SecurityUser,
    input: &ReportInput<'_>,
    skill: Option<&str>,
) -> Result<(ReportRange, Vec<PromiseRow>), AppError> {
    require(user, Permission::CallbacksRead)?;
    let range = input.read(Utc::now()).map_err(AppError::Malformed)?;
    let skill = skill
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<SkillId>()
                .map_err(|e| AppError::Malformed(format!("skillId: {e}")))
        })
        .transpose()?;
    if let Some(skill) = skill {
        require_skill(user, skill)?;
    }
    let mut tally = Tally::new(range.on_time_seconds);
    app.store
        .promise_parts(&range, skill, user.skills.as_deref(), |part| {
            tally.add(part)
        })
        .await?;
    Ok((range, tally.rows()))
}
