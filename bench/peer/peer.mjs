// The peer scheduler of callbackd's benchmark: graphile-worker (jobs in PostgreSQL) whose one
// task publishes the job's payload — the same `callbackd.callback.v1` JSON a callbackd
// dispatch sends — to a durable topic exchange with amqplib on a confirm channel, persistent
// and mandatory, completing the job only once the broker confirmed it.
//
//   node peer.mjs migrate            installs graphile-worker's schema, then exits
//   node peer.mjs run                runs the worker until killed; prints "ready" when started
//
// Settings come from the environment (the benchmark sets them):
//   PEER_DATABASE_URL, PEER_AMQP_URL, PEER_EXCHANGE,
//   PEER_CONCURRENCY (jobs run at once), PEER_WINDOW (publications awaiting a confirm at
//   once, as callbackd's dispatch.publish_window), PEER_POLL_MS (graphile-worker's
//   pollInterval: how often idle workers look for jobs that became due).

import amqp from "amqplib";
import { run, runMigrations } from "graphile-worker";

const mode = process.argv[2];
const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`peer: ${name} is not set`);
    process.exit(2);
  }
  return value;
};
const connectionString = env("PEER_DATABASE_URL");

if (mode === "migrate") {
  await runMigrations({ connectionString });
  process.exit(0);
} else if (mode !== "run") {
  console.error(`peer: unknown mode \`${mode}\`; expected migrate or run`);
  process.exit(2);
}

const exchange = env("PEER_EXCHANGE");
const concurrency = Number(env("PEER_CONCURRENCY", "32"));
const window = Number(env("PEER_WINDOW", "256"));
const pollInterval = Number(env("PEER_POLL_MS", "2000"));

const connection = await amqp.connect(env("PEER_AMQP_URL"));
const channel = await connection.createConfirmChannel();
await channel.assertExchange(exchange, "topic", { durable: true });
let returned = 0;
channel.on("return", () => {
  returned += 1;
});

// At most `window` publications await their confirm at once, shared by every job.
let inFlight = 0;
const waiting = [];
const acquire = () =>
  inFlight < window
    ? ((inFlight += 1), Promise.resolve())
    : new Promise((resolve) => waiting.push(resolve));
const release = () => {
  const next = waiting.shift();
  if (next) next();
  else inFlight -= 1;
};

const publish = (payload) =>
  new Promise((resolve, reject) => {
    channel.publish(
      exchange,
      payload.routingKey,
      Buffer.from(JSON.stringify(payload)),
      {
        persistent: true,
        mandatory: true,
        contentType: "application/json",
        messageId: payload.callbackId,
        appId: "graphile-worker",
        timestamp: Math.floor(Date.now() / 1000),
        headers: {
          "x-callbackd-schema": payload.schema,
          route: payload.route,
          skill_id: payload.skillId,
          agent_id: payload.targetAgentId,
          attempt: payload.attempt,
        },
      },
      (err) => (err ? reject(err) : resolve()),
    );
  });

const runner = await run({
  connectionString,
  concurrency,
  // graphile-worker warns when the pool is smaller than the concurrency.
  maxPoolSize: concurrency + 2,
  pollInterval,
  taskList: {
    publish: async (payload) => {
      await acquire();
      try {
        await publish(payload);
      } finally {
        release();
      }
    },
  },
});
console.log("ready");
await runner.promise;
console.error(`peer: stopped; ${returned} messages returned unroutable`);
await connection.close();
