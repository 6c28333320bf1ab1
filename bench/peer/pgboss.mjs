// The pg-boss peer of callbackd's benchmark: jobs in PostgreSQL (pg-boss 10), each job's data
// the `callbackd.callback.v1` JSON a callbackd dispatch sends. Its workers fetch a batch of
// due jobs with one UPDATE … FOR UPDATE SKIP LOCKED (`work` with `batchSize`), publish the
// batch to a durable topic exchange with amqplib on a confirm channel (persistent,
// mandatory, at most PEER_WINDOW awaiting a confirm), and, once every publication of the
// batch is confirmed, pg-boss completes the batch with one UPDATE (`complete` with the ids).
//
//   node pgboss.mjs migrate    installs pg-boss's schema and creates the queue, then exits
//   node pgboss.mjs load       adds PEER_JOBS jobs with `insert` (bulk), the i-th (from 0)
//                              due at PEER_START_MS + i × PEER_STEP_MS (epoch milliseconds)
//   node pgboss.mjs run        starts pg-boss, prints "ready", starts the workers at the
//                              line "go" on standard input, runs until SIGTERM
//
// Settings come from the environment (the benchmark sets them):
//   PEER_DATABASE_URL, PEER_AMQP_URL, PEER_EXCHANGE, PEER_WINDOW,
//   PEER_WORKERS (how many `work` loops), PEER_BATCH (`batchSize`: jobs per fetch),
//   PEER_POLL_S (`pollingIntervalSeconds`; unset: pg-boss's default, 2 s; 0.5 is its
//   minimum). pg-boss's worker waits the polling interval less the time the batch took
//   after every fetch, whether or not it found jobs, so one worker moves at most
//   PEER_BATCH jobs per interval.

import PgBoss from "pg-boss";
import { env, publisher, readyThenGo } from "./publish.mjs";

const QUEUE = "publish";
const SKILL = 101;
const LOAD_CHUNK = 10_000;

const mode = process.argv[2];
const connectionString = env("PEER_DATABASE_URL");

if (mode === "migrate") {
  const boss = new PgBoss({ connectionString, supervise: false, schedule: false });
  boss.on("error", (e) => console.error(`pg-boss: ${e.message}`));
  await boss.start();
  await boss.createQueue(QUEUE);
  await boss.stop({ graceful: false });
  process.exit(0);
} else if (mode === "load") {
  const boss = new PgBoss({ connectionString, supervise: false, schedule: false });
  boss.on("error", (e) => console.error(`pg-boss: ${e.message}`));
  await boss.start();
  const n = Number(env("PEER_JOBS"));
  const start = Number(env("PEER_START_MS"));
  const step = Number(env("PEER_STEP_MS", "0"));
  const createdAt = new Date().toISOString();
  for (let done = 0; done < n; done += LOAD_CHUNK) {
    const jobs = [];
    for (let i = done; i < Math.min(n, done + LOAD_CHUNK); i += 1) {
      const due = new Date(start + i * step).toISOString();
      jobs.push({
        name: QUEUE,
        startAfter: due,
        data: {
          schema: "callbackd.callback.v1",
          callbackId: crypto.randomUUID(),
          attempt: 1,
          route: "skill",
          routingKey: `skill.${SKILL}`,
          skillId: SKILL,
          targetAgentId: null,
          firstName: `First ${i + 1}`,
          lastName: "Last",
          phoneNumber: "+14155552671",
          notes: "",
          timeZone: null,
          scheduledFor: due,
          dueAt: due,
          createdBy: "bench",
          createdAt,
        },
      });
    }
    await boss.insert(jobs);
  }
  await boss.stop({ graceful: false });
  process.exit(0);
} else if (mode !== "run") {
  console.error(`peer: unknown mode \`${mode}\`; expected migrate, load or run`);
  process.exit(2);
}

const workers = Number(env("PEER_WORKERS", "1"));
const batchSize = Number(env("PEER_BATCH", "1"));
const pollS = process.env.PEER_POLL_S;
const { publish, close } = await publisher({
  url: env("PEER_AMQP_URL"),
  exchange: env("PEER_EXCHANGE"),
  window: Number(env("PEER_WINDOW", "256")),
  appId: "pg-boss",
});
const boss = new PgBoss(connectionString);
boss.on("error", (e) => console.error(`pg-boss: ${e.message}`));
await boss.start();

await readyThenGo();
const options = { batchSize };
if (pollS !== undefined && pollS !== "") options.pollingIntervalSeconds = Number(pollS);
for (let w = 0; w < workers; w += 1) {
  // The handler resolves once every publication of the batch is confirmed; pg-boss then
  // completes the batch (one UPDATE with the ids array).
  await boss.work(QUEUE, options, (jobs) => Promise.all(jobs.map((job) => publish(job.data))));
}

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await boss.stop({ graceful: true, timeout: 5000, wait: true });
  await close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
