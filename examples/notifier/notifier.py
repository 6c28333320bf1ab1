"""A small callbackd notifier: it logs the SMS it would send for each reminder.

callbackd writes a `reminder` event before a callback, at the times its skill asks for
(`reminders`, seconds before the due time), and publishes it on the event stream
(`callbackd.event.v1`, exchange `callbackd.events`, routing key `reminder.<skillId>`; see
docs/messages.md). This worker binds its own durable queue to `reminder.#`, writes the
message a customer would get, and logs it instead of sending it: replace `send()` with your
SMS or e-mail provider. Each event is acknowledged after it is handled; a repeat (same
`message_id`, `event:<eventId>`) is dropped.

Settings come from arguments or NOTIFIER_* environment variables (see `--help`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections import OrderedDict
from datetime import datetime
from types import FrameType
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

EVENT_SCHEMA = "callbackd.event.v1"

log = logging.getLogger("notifier")


def message_for(details: dict[str, Any]) -> str:
    """The text a customer gets: when the call comes, in their own time zone."""
    local = datetime.fromisoformat(details["localDueAt"])
    name = details.get("firstName") or "there"
    hours = int(details["reminderSeconds"]) // 3600
    ahead = f"in {hours} hour{'s' if hours != 1 else ''}" if hours else "shortly"
    return (
        f"Hi {name}, as promised we will call you {ahead}, at "
        f"{local:%H:%M} on {local:%A %d %B} ({details['timeZone']})."
    )


def send(phone_number: str, text: str) -> None:
    """REPLACE ME: hand the message to your SMS or e-mail provider."""
    log.info("would send to=%s text=%r", phone_number, text)


def main() -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", default=env("NOTIFIER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"))
    parser.add_argument("--exchange", default=env("NOTIFIER_EXCHANGE", "callbackd.events"))
    parser.add_argument("--queue", default=env("NOTIFIER_QUEUE", "notifier.reminders"))
    parser.add_argument("--binding", default=env("NOTIFIER_BINDING", "reminder.#"))
    parser.add_argument("--max-messages", type=int, default=int(env("NOTIFIER_MAX_MESSAGES", "0")),
                        help="stop after this many reminders (0: run until stopped)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)

    connection = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel: BlockingChannel = connection.channel()
    channel.exchange_declare(args.exchange, exchange_type="topic", durable=True, passive=True)
    channel.queue_declare(args.queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(args.queue, args.exchange, routing_key=args.binding)
    channel.basic_qos(prefetch_count=32)

    seen: OrderedDict[str, None] = OrderedDict()
    handled = 0

    def stop(_signum: int, _frame: FrameType | None) -> None:
        channel.stop_consuming()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def on_message(ch: BlockingChannel, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        nonlocal handled
        message_id = properties.message_id or ""
        try:
            event = json.loads(body)
        except ValueError:
            log.warning("not JSON; dropped message_id=%s", message_id)
            ch.basic_ack(method.delivery_tag)
            return
        if event.get("schema") != EVENT_SCHEMA or event.get("kind") != "reminder":
            ch.basic_ack(method.delivery_tag)
            return
        if message_id in seen:
            log.info("repeat dropped message_id=%s", message_id)
            ch.basic_ack(method.delivery_tag)
            return
        details = event["details"]
        send(details["phoneNumber"], message_for(details))
        log.info("reminded callback_id=%s event_id=%s", event["callbackId"], event["eventId"])
        seen[message_id] = None
        if len(seen) > 10_000:
            seen.popitem(last=False)
        ch.basic_ack(method.delivery_tag)
        handled += 1
        if args.max_messages and handled >= args.max_messages:
            ch.stop_consuming()

    channel.basic_consume(args.queue, on_message)
    log.info("waiting for reminders queue=%s binding=%s", args.queue, args.binding)
    channel.start_consuming()
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
