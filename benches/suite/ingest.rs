//! (6) Ingest: `POST /v1/callbacks` from concurrent keep-alive clients against the daemon,
//! set up as an operator would — a security user and a skills import with the CLI.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Options;
use crate::infra::{Ctx, Daemon, states};
use crate::profile::{Activity, CpuSampler, counters_delta, per_item, pg_counters};
use crate::report::percentiles;

struct ClientTally {
    latencies_ms: Vec<f64>,
    created: u64,
    other: Vec<u16>,
    errors: u64,
}

pub async fn run(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let (name, url) = ctx.create_db("ingest").await?;
    let token = ctx
        .callbackd(&url, &["user", "add", "bench", "--permission", "all"])
        .await?;
    if token.is_empty() {
        bail!("`callbackd user add` printed no token");
    }
    let skills = ctx.out_dir.join("skills.csv");
    std::fs::write(
        &skills,
        "id,name,mediaType,direction,active,timeZone\n101,Bench outbound,phone,outbound,true,Europe/London\n",
    )
    .context("writing skills.csv")?;
    let skills = skills.to_string_lossy().into_owned();
    ctx.callbackd(&url, &["import", "skills", &skills]).await?;
    let exchange = ctx.declare_exchange("callbacks").await?;
    let mut daemon = Daemon::spawn(ctx, options, &url, &exchange, "ingest")?;
    daemon.wait_ready(Duration::from_secs(30)).await?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.ingest_clients)
        .build()?;
    let endpoint = format!("{}/v1/callbacks", daemon.base_url());
    let schedule = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = json!({
        "firstName": "A",
        "lastName": "B",
        "phoneNumber": "+14155552671",
        "skillId": 101,
        "scheduleDate": schedule,
    });
    // One request each to open the connections before timing.
    for _ in 0..options.ingest_clients {
        client
            .post(&endpoint)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?
            .error_for_status()
            .context("a warm-up create failed")?;
    }

    let pool = crate::infra::connect(&url, 1).await?;
    let before = pg_counters(&ctx.admin, &name).await?;
    let activity = Activity::start(&ctx.db_url("postgres"), &name).await?;
    let cpu = CpuSampler::start(vec![("callbackd", daemon.pid), activity.watched()]);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.ingest_seconds);
    let mut tasks = Vec::new();
    for _ in 0..options.ingest_clients {
        let (client, endpoint, token, body) = (
            client.clone(),
            endpoint.clone(),
            token.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tally = ClientTally {
                latencies_ms: Vec::new(),
                created: 0,
                other: Vec::new(),
                errors: 0,
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                match client
                    .post(&endpoint)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        tally.created += 1;
                    }
                    Ok(r) => tally.other.push(r.status().as_u16()),
                    Err(_) => tally.errors += 1,
                }
                tally.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            tally
        }));
    }
    let mut latencies = Vec::new();
    let (mut created, mut errors) = (0u64, 0u64);
    let mut other = Vec::new();
    for task in tasks {
        let t = task.await?;
        latencies.extend(t.latencies_ms);
        created += t.created;
        errors += t.errors;
        other.extend(t.other);
    }
    let elapsed = started.elapsed();
    let cpu = cpu.stop();
    let activity = activity.stop().await;
    let rss = daemon.peak_rss_mib()?;
    daemon.stop()?;
    let after = pg_counters(&ctx.admin, &name).await?;
    let result = json!({
        "clients": options.ingest_clients,
        "seconds": elapsed.as_secs_f64(),
        "created": created,
        "creates_per_s": created as f64 / elapsed.as_secs_f64(),
        "latency_ms": percentiles(latencies),
        "non_201_answers": other.len(),
        "non_201_statuses": other.iter().take(10).collect::<Vec<_>>(),
        "transport_errors": errors,
        "peak_rss_mib": rss,
        "states_after": states(&pool).await?,
        "cpu_us_per_item": per_item(&cpu, created, "create", Some(("callbackd", "callbackd"))),
        "cpu": cpu,
        "pg_activity": activity,
        "pg_counters": counters_delta(&before, &after),
    });
    pool.close().await;
    Ok(result)
}
