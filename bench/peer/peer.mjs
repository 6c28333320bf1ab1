// The graphile-worker peer of callbackd's benchmark: jobs in PostgreSQL whose one task
// publishes the job's payload — the same `callbackd.callback.v1` JSON a callbackd dispatch
// sends — to a durable topic exchange with amqplib on a confirm channel, persistent and
// mandatory, completing the job only once the broker confirmed it.
//
//   node peer.mjs migrate            installs graphile-worker's schema, then exits
//   node peer.mjs run                connects, prints "ready", runs the worker from the line
//                                    "go" on standard input until killed
//
// Settings come from the environment (the benchmark sets them):
//   PEER_DATABASE_URL, PEER_AMQP_URL, PEER_EXCHANGE,
//   PEER_CONCURRENCY (jobs run at once), PEER_WINDOW (publications awaiting a confirm at
//   once, as callbackd's dispatch.publish_window), PEER_POLL_MS (graphile-worker's
//   pollInterval: how often idle workers look for jobs that became due).
// The jobs are added by the benchmark with graphile_worker.add_jobs (SQL).

import { run, runMigrations } from "graphile-worker";
import { env, publisher, readyThenGo } from "./publish.mjs";

const mode = process.argv[2];
const connectionString = env("PEER_DATABASE_URL");

if (mode === "migrate") {
  await runMigrations({ connectionString });
  process.exit(0);
} else if (mode !== "run") {
  console.error(`peer: unknown mode \`${mode}\`; expected migrate or run`);
  process.exit(2);
}

const concurrency = Number(env("PEER_CONCURRENCY", "32"));
const pollInterval = Number(env("PEER_POLL_MS", "2000"));
const { publish, close } = await publisher({
  url: env("PEER_AMQP_URL"),
  exchange: env("PEER_EXCHANGE"),
  window: Number(env("PEER_WINDOW", "256")),
  appId: "graphile-worker",
});

await readyThenGo();
const runner = await run({
  connectionString,
  concurrency,
  // graphile-worker warns when the pool is smaller than the concurrency.
  maxPoolSize: concurrency + 2,
  pollInterval,
  taskList: { publish },
});
await runner.promise;
await close();
