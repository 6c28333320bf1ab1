// What both peer schedulers share: the publisher (amqplib on a confirm channel, the same
// properties and headers a callbackd dispatch sets, persistent and mandatory, at most
// `window` publications awaiting a confirm at once), the environment, and the start gate.

import amqp from "amqplib";
import { createInterface } from "node:readline";

export const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`peer: ${name} is not set`);
    process.exit(2);
  }
  return value;
};

/// Connects, declares the exchange as callbackd does (durable topic) and returns
/// `publish(payload)`, which resolves once the broker confirmed it.
export async function publisher({ url, exchange, window, appId }) {
  const connection = await amqp.connect(url);
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

  const send = (payload) =>
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
          appId,
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

  const publish = async (payload) => {
    await acquire();
    try {
      await send(payload);
    } finally {
      release();
    }
  };
  const close = async () => {
    console.error(`peer: stopped; ${returned} messages returned unroutable`);
    await connection.close();
  };
  return { publish, close };
}

/// Prints "ready", then waits for the line "go" on standard input: the benchmark starts its
/// clock (and its CPU sampling) at "go", so that Node's start-up is not counted as work.
export async function readyThenGo() {
  console.log("ready");
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === "go") return;
  }
  process.exit(0);
}
