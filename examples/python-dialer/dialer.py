"""A minimal callbackd dialer worker (pika, blocking).

It consumes `callbackd.callback.v1` messages from its own queue, "dials" through `dial()`
(a stub: replace it), and reports a `callbackd.outcome.v1` to the outcomes queue, following
callbackd's docs/messages.md. A callback message is acknowledged only after the broker has
confirmed the outcome, so a crash at any point loses nothing: the callback is delivered again.

Settings come from arguments or DIALER_* environment variables (see `--help`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections import OrderedDict
from types import FrameType
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

CALLBACK_SCHEMA = "callbackd.callback.v1"
OUTCOME_SCHEMA = "callbackd.outcome.v1"
# What dial() may answer. `accepted` and `reschedule` exist too (docs/messages.md), but a
# dialer that uses them reports more than one outcome per attempt, or a scheduleDate.
OUTCOMES = ("completed", "no_answer", "busy", "failed", "invalid_number")

log = logging.getLogger("python-dialer")


def dial(callback: dict[str, Any], outcome: str, dial_seconds: float) -> str:
    """REPLACE ME: dial here.

    Place the call to `callback["phoneNumber"]` (E.164) for skill `callback["skillId"]`, or
    offer it to agent `callback["targetAgentId"]` when `callback["route"] == "agent"`, and
    return what happened, one of OUTCOMES. This stub waits `dial_seconds` and answers the
    configured outcome (DIALER_OUTCOME), so tests decide what callbackd is told.

    A real dial may take minutes: with a blocking connection, run it in a thread and wait
    with `connection.process_data_events()` (or `connection.sleep()`) so heartbeats go on.
    """
    time.sleep(dial_seconds)
    return outcome


class SeenIds:
    """The publication ids (`message_id`) already handled, kept for `ttl` seconds.

    docs/messages.md: de-duplicate by `message_id` (`<callbackId>:<attempt>`), never by
    callbackId, since each attempt must be dialled. A repeat follows its original within
    seconds, so a day is plenty. This store is in memory and per process: a production
    worker, or several workers on one queue, would keep the ids in a shared store with an
    expiry, e.g. Redis `SET <id> 1 NX EX 86400`, or a table with a unique key.
    """

    def __init__(self, ttl: float = 86400.0, capacity: int = 100_000) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._expiry: OrderedDict[str, float] = OrderedDict()  # oldest first

    def claim(self, message_id: str) -> bool:
        """True if `message_id` is new (and is now taken), False if it was seen."""
        now = time.monotonic()
        while self._expiry and next(iter(self._expiry.values())) <= now:
            self._expiry.popitem(last=False)
        if message_id in self._expiry:
            return False
        while len(self._expiry) >= self._capacity:
            self._expiry.popitem(last=False)
        self._expiry[message_id] = now + self._ttl
        return True

    def release(self, message_id: str) -> None:
        """Forget an id whose outcome could not be reported, so its redelivery is dialled."""
        self._expiry.pop(message_id, None)


class Dialer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seen = SeenIds()
        self.stopping = False

    def run(self, connection: pika.BlockingConnection, user_id: str | None) -> None:
        args = self.args
        consume = connection.channel()
        # Passive: callbackd declares the exchange; this only checks that it exists.
        consume.exchange_declare(args.exchange, passive=True)
        if args.declare:
            # Our own durable queue, bound to the routing keys this worker serves. A quorum
            # queue, like callbackd's, keeps messages through a broker node's loss.
            consume.queue_declare(
                args.queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
            for key in args.bindings:
                consume.queue_bind(args.queue, args.exchange, routing_key=key)
        # This worker handles one message at a time; prefetch bounds what the broker
        # hands it ahead (and what returns to the queue if it dies).
        consume.basic_qos(prefetch_count=args.prefetch)

        # Outcomes go out on a channel of their own, with publisher confirms: basic_publish
        # then returns only once the broker has taken the message, and raises otherwise.
        report = connection.channel()
        report.confirm_delivery()
        log.info(
            "consuming queue=%s bindings=%s prefetch=%d outcome=%s",
            args.queue, ",".join(args.bindings), args.prefetch, args.outcome,
        )
        # inactivity_timeout: wake every second to see whether a signal asked us to stop.
        for method, properties, body in consume.consume(args.queue, inactivity_timeout=1.0):
            if self.stopping:
                break
            if method is None or properties is None or body is None:
                continue
            self.handle(consume, report, user_id, method, properties, body)
        consume.cancel()  # unacknowledged messages go back to the queue

    def handle(
        self,
        consume: BlockingChannel,
        report: BlockingChannel,
        user_id: str | None,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        tag = method.delivery_tag
        try:
            callback = json.loads(body)
            callback_id, attempt = str(callback["callbackId"]), int(callback["attempt"])
            if callback.get("schema") != CALLBACK_SCHEMA:
                raise ValueError(f"schema {callback.get('schema')!r}")
        except (ValueError, KeyError, TypeError) as e:
            # Unreadable: requeueing would loop. Give the queue a dead-letter exchange
            # (x-dead-letter-exchange) to keep such messages for inspection.
            log.error("rejected delivery_tag=%d reason=%s", tag, e)
            consume.basic_reject(tag, requeue=False)
            return
        message_id = properties.message_id or f"{callback_id}:{attempt}"
        if not self.seen.claim(message_id):
            log.info("duplicate message_id=%s dropped", message_id)
            consume.basic_ack(tag)
            return

        started = time.monotonic()
        outcome = dial(callback, self.args.outcome, self.args.dial_seconds)
        outcome_message = {
            "schema": OUTCOME_SCHEMA,
            "callbackId": callback_id,
            "attempt": attempt,  # the attempt of *this* message, not the latest one
            "outcome": outcome,
        }
        try:
            report.basic_publish(
                exchange="",  # the default exchange: routing key = queue name
                routing_key=self.args.outcomes_queue,
                body=json.dumps(outcome_message).encode(),
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=2,  # persistent, like the durable queue it goes to
                    user_id=user_id,
                    app_id="python-dialer",
                ),
                mandatory=True,  # no outcomes queue: returned, not silently dropped
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
            # Not reported: put the callback back so that it is reported later (callbackd
            # applies each (callbackId, attempt, outcome) once, so a re-send is safe).
            log.error("outcome not confirmed message_id=%s error=%r; requeued", message_id, e)
            self.seen.release(message_id)
            time.sleep(1)
            consume.basic_nack(tag, requeue=True)
            return
        consume.basic_ack(tag)
        log.info(
            "handled message_id=%s callback_id=%s attempt=%d route=%s routing_key=%s "
            "outcome=%s dial_ms=%d",
            message_id, callback_id, attempt, callback.get("route"), method.routing_key,
            outcome, (time.monotonic() - started) * 1000,
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])

    def option(flag: str, var: str, default: str, help: str, **kw: Any) -> None:
        """--flag, whose default is the environment variable `var`, else `default`."""
        p.add_argument(flag, default=os.environ.get(var, default),
                       help=f"{help} [{var}, default {default}]".replace("%", "%%"), **kw)

    option("--url", "DIALER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f", "RabbitMQ URL")
    option("--exchange", "DIALER_EXCHANGE", "callbackd.callbacks", "callbackd's amqp.exchange")
    option("--queue", "DIALER_QUEUE", "callbackd.dialer.python", "this worker's queue")
    option("--bindings", "DIALER_BINDINGS", "skill.*,agent.*",
           "routing key patterns to bind, comma-separated, e.g. skill.101,agent.*")
    p.add_argument("--no-declare", dest="declare", action="store_false",
                   default=os.environ.get("DIALER_DECLARE", "true") != "false",
                   help="do not declare or bind the queue: callbackd's amqp.queues does "
                   "[DIALER_DECLARE=false]")
    option("--outcomes-queue", "DIALER_OUTCOMES_QUEUE", "callbackd.outcomes",
           "callbackd's amqp.outcomes_queue")
    option("--prefetch", "DIALER_PREFETCH", "10", "unacknowledged callbacks at most", type=int)
    option("--outcome", "DIALER_OUTCOME", "completed", "what the dial() stub answers",
           choices=OUTCOMES)
    option("--dial-ms", "DIALER_DIAL_MS", "100", "how long the dial() stub takes", type=int)
    args = p.parse_args(argv)
    args.bindings = [key.strip() for key in args.bindings.split(",") if key.strip()]
    args.dial_seconds = args.dial_ms / 1000
    return args


def main(argv: list[str]) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    dialer = Dialer(parse_args(argv))

    def stop(signum: int, _frame: FrameType | None) -> None:
        # Finish the message in hand, then leave; the consume loop checks this each second.
        log.info("stopping signal=%s", signal.Signals(signum).name)
        dialer.stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    params = pika.URLParameters(dialer.args.url)
    # docs/messages.md, "Who may report outcomes": callbackd may accept outcomes only from
    # listed users, named by the user_id property; RabbitMQ checks that it is the
    # connection's own user, so it is the user name of the URL.
    credentials = params.credentials
    user_id = credentials.username if isinstance(credentials, pika.PlainCredentials) else None
    while not dialer.stopping:
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError as e:
            log.warning("cannot connect error=%r; retrying in 5 s", e)
            time.sleep(5)
            continue
        try:
            dialer.run(connection, user_id)
        except pika.exceptions.AMQPError as e:
            # Connection lost, or a declaration refused (callbackd not started yet: no
            # exchange). Unacknowledged callbacks return to the queue; the seen ids stay.
            log.warning("broker error=%r; reconnecting in 5 s", e)
            time.sleep(5)
        finally:
            if connection.is_open:
                connection.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
