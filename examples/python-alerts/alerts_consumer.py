#!/usr/bin/env python3
"""Consume Forewarn maintenance alerts from Kafka.

Reads the `forewarn.alerts` topic through a consumer group, validates every
event against docs/alert.schema.json, drops duplicates, and prints one line per
new event (or its JSON with --json), or POSTs it to a webhook (--webhook URL).

Delivery is at-least-once: an event's offset is committed only after the event
has been printed or accepted by the webhook. See README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Hashable, Optional

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

DEFAULT_SCHEMA = Path(__file__).resolve().parent.parent.parent / "docs" / "alert.schema.json"
DEFAULT_TOPIC = "forewarn.alerts"
DEFAULT_GROUP = "forewarn-alerts-example"
DEDUPE_CAPACITY = 100_000


# --- Pure logic: validation, de-duplication, formatting (unit-tested without Kafka) ---------

def load_validator(schema_path: str | Path) -> Draft202012Validator:
    """A validator for the alert schema; raises if the schema itself is broken."""
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def parse_event(raw: bytes | str | None, validator: Draft202012Validator) -> tuple[Optional[dict], Optional[str]]:
    """Decodes and validates one record value.

    Returns (event, None) when it is a valid alert event, else (None, reason). Never raises
    for bad input: reason says what is wrong (not UTF-8, not JSON, or which schema rules fail).
    """
    if raw is None:
        return None, "empty record (no value)"
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, f"not UTF-8: {e}"
    try:
        event = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        return None, f"not JSON: {e}"
    errors = sorted(validator.iter_errors(event), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(_describe(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return None, f"schema validation failed: {details}{more}"
    return event, None


def _describe(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(event)"
    return f"{where}: {error.message}"


def dedupe_key(event: dict) -> tuple:
    """The identity of an alert event.

    An episode has one open and one resolved event, so those are identified by
    (alert_id, state); it may have many updates, identified by (alert_id, state, ts).
    """
    if event["state"] == "update":
        return (event["alert_id"], "update", event["ts"])
    return (event["alert_id"], event["state"])


class Deduplicator:
    """Remembers the most recent `capacity` keys (least recently seen are forgotten first)."""

    def __init__(self, capacity: int = DEDUPE_CAPACITY):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def is_duplicate(self, key: Hashable) -> bool:
        """True when `key` was remembered; a hit counts as a use for the LRU order."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def remember(self, key: Hashable) -> None:
        """Records `key` (call it once the event has been handled)."""
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def format_event(event: dict) -> str:
    """One readable line for an alert event."""
    ttt = event.get("time_to_threshold_s")
    ttt_text = "n/a" if ttt is None else f"{ttt:.0f}s"
    sensors = ",".join(event["sensors"]) or "-"
    return (
        f"{_iso(event['ts'])} {event['state'].upper():<8} {event['severity']:<8} "
        f"{event['site']}/{event['machine']} {event['kind']} model={event['model']} sensors={sensors} "
        f"score={event['score']:.3f} threshold={event['threshold']:.3f} time_to_threshold={ttt_text} "
        f"opened_at={_iso(event['opened_at'])} alert_id={event['alert_id']}"
    )


def json_line(raw: bytes, event: dict) -> str:
    """The event as one JSON line: the record as sent, unless it spans several lines."""
    text = raw.decode("utf-8").strip()
    if "\n" in text or "\r" in text:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return text


# --- Webhook ---------------------------------------------------------------------------------

class WebhookRejected(Exception):
    """The webhook refused the event for good (HTTP 4xx other than 408/429)."""


class WebhookUnavailable(Exception):
    """The webhook could not take the event within the retries."""


def post_webhook(url: str, event: dict, *, retries: int = 5, backoff: float = 0.5, max_backoff: float = 10.0,
                 timeout: float = 10.0, stop=lambda: False, sleep=time.sleep) -> None:
    """POSTs the event as JSON, retrying transient failures with exponential backoff.

    Bounded: at most 1 + `retries` attempts. Raises WebhookRejected for a permanent refusal,
    WebhookUnavailable when every attempt failed (or `stop()` became true while waiting).
    The Idempotency-Key header carries the de-duplication key, so the receiver can drop
    the duplicates that at-least-once delivery can produce after a restart.
    """
    body = json.dumps(event, separators=(",", ":")).encode("utf-8")
    key = ":".join(str(p) for p in dedupe_key(event))
    last = ""
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": "forewarn-alerts-example/1"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.reason}"
            if 400 <= e.code < 500 and e.code not in (408, 429):
                raise WebhookRejected(last) from e
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
        if attempt == retries or stop():
            break
        delay = min(max_backoff, backoff * (2 ** attempt))
        print(f"webhook: attempt {attempt + 1} failed ({last}); retrying in {delay:.1f}s", file=sys.stderr)
        sleep(delay)
    raise WebhookUnavailable(f"{last} after {attempt + 1} attempts")


# --- The consumer ----------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Consume, validate, de-duplicate and print or forward Forewarn alerts.")
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers (default: %(default)s)")
    p.add_argument("--group", default=DEFAULT_GROUP, help="consumer group id (default: %(default)s)")
    p.add_argument("--topic", default=DEFAULT_TOPIC, help="alerts topic (default: %(default)s)")
    p.add_argument("--schema", default=str(DEFAULT_SCHEMA), help="alert JSON Schema (default: the repo's docs/alert.schema.json)")
    p.add_argument("--json", action="store_true", help="print each new event as one raw JSON line")
    p.add_argument("--webhook", metavar="URL", help="POST each new event as JSON to URL instead of printing it")
    p.add_argument("--webhook-retries", type=int, default=5, metavar="N", help="retries per event (default: %(default)s)")
    p.add_argument("--webhook-timeout", type=float, default=10.0, metavar="S", help="seconds per attempt (default: %(default)s)")
    p.add_argument("--from-beginning", action="store_true", help="ignore the group's committed offsets and replay the whole topic")
    p.add_argument("--max-seconds", type=float, metavar="N", help="stop after N seconds")
    p.add_argument("--max-events", type=int, metavar="N", help="stop after reading N records (new, duplicate or invalid)")
    p.add_argument("-X", dest="properties", action="append", default=[], metavar="KEY=VALUE",
                   help="extra librdkafka property, e.g. -X security.protocol=SASL_SSL (repeatable)")
    args = p.parse_args(argv)
    for prop in args.properties:
        if "=" not in prop:
            p.error(f"-X expects KEY=VALUE, got {prop!r}")
    if args.webhook_retries < 0:
        p.error("--webhook-retries must be 0 or more")
    return args


class AlertConsumer:
    def __init__(self, args: argparse.Namespace, validator: Draft202012Validator):
        self.args = args
        self.validator = validator
        self.dedupe = Deduplicator()
        self.stopping = False
        self.counts = {"read": 0, "new": 0, "duplicate": 0, "invalid": 0, "webhook_rejected": 0}
        # Next offset to commit per (topic, partition): the one after the last handled record.
        self.handled: dict[tuple[str, int], int] = {}

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        from confluent_kafka import Consumer, KafkaException

        config = {
            "bootstrap.servers": self.args.bootstrap,
            "group.id": self.args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,  # committed below, after each event is handled
            "client.id": "forewarn-alerts-example",
        }
        config.update(dict(prop.split("=", 1) for prop in self.args.properties))
        consumer = Consumer(config)
        rewound: set[tuple[str, int]] = set()

        def on_assign(c: Any, partitions: list) -> None:
            # Without a call to assign() here, the client assigns at the committed offsets.
            if self.args.from_beginning:
                from confluent_kafka import OFFSET_BEGINNING
                for tp in partitions:
                    if (tp.topic, tp.partition) not in rewound:  # once per partition, not on every rebalance
                        rewound.add((tp.topic, tp.partition))
                        tp.offset = OFFSET_BEGINNING
                c.assign(partitions)

        def on_revoke(c: Any, partitions: list) -> None:
            revoked = {(tp.topic, tp.partition) for tp in partitions}
            self.commit(c, only=revoked)
            # Another member owns them now: never commit these stale positions again.
            for tp in revoked:
                self.handled.pop(tp, None)

        consumer.subscribe([self.args.topic], on_assign=on_assign, on_revoke=on_revoke)
        deadline = None if self.args.max_seconds is None else time.monotonic() + self.args.max_seconds
        status = 0
        try:
            while not self.stopping:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if self.args.max_events is not None and self.counts["read"] >= self.args.max_events:
                    break
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    err = msg.error()
                    print(f"kafka: {err}", file=sys.stderr)
                    if err.fatal():
                        status = 1
                        break
                    continue
                self.counts["read"] += 1
                try:
                    self.handle(msg)
                except WebhookUnavailable as e:
                    # Not committed: the event is delivered again when the consumer restarts.
                    print(f"webhook: giving up on {msg.topic()}[{msg.partition()}]@{msg.offset()}: {e}; stopping", file=sys.stderr)
                    status = 1
                    break
                self.handled[(msg.topic(), msg.partition())] = msg.offset() + 1
                # Asynchronous per event; the synchronous commit at shutdown makes the last one durable.
                self.commit(consumer, only={(msg.topic(), msg.partition())}, asynchronous=True)
        except KafkaException as e:
            print(f"kafka: {e}", file=sys.stderr)
            status = 1
        finally:
            self.commit(consumer)
            consumer.close()  # leaves the group at once, so its partitions move without waiting for a timeout
            c = self.counts
            print(f"alerts: read {c['read']}, new {c['new']}, duplicates {c['duplicate']}, invalid {c['invalid']}"
                  + (f", webhook rejected {c['webhook_rejected']}" if self.args.webhook else ""), file=sys.stderr)
        return status

    def handle(self, msg: Any) -> None:
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        event, reason = parse_event(msg.value(), self.validator)
        if event is None:
            self.counts["invalid"] += 1
            print(f"invalid alert at {where} (key {_key_text(msg.key())}): {reason}", file=sys.stderr)
            return
        key = dedupe_key(event)
        if self.dedupe.is_duplicate(key):
            self.counts["duplicate"] += 1
            return
        if self.args.webhook:
            try:
                post_webhook(self.args.webhook, event, retries=self.args.webhook_retries,
                             timeout=self.args.webhook_timeout, stop=lambda: self.stopping)
            except WebhookRejected as e:
                # Retrying cannot help: report, count, and move on.
                self.counts["webhook_rejected"] += 1
                print(f"webhook: rejected {where} alert_id={event['alert_id']} state={event['state']}: {e}", file=sys.stderr)
        elif self.args.json:
            print(json_line(msg.value(), event), flush=True)
        else:
            print(format_event(event), flush=True)
        self.dedupe.remember(key)
        self.counts["new"] += 1

    def commit(self, consumer: Any, only: set | None = None, asynchronous: bool = False) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(t, p, o) for (t, p), o in self.handled.items() if only is None or (t, p) in only]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as e:
            print(f"kafka: commit failed: {e}", file=sys.stderr)


def _key_text(key: bytes | None) -> str:
    return "none" if key is None else key.decode("utf-8", "replace")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        validator = load_validator(args.schema)
    except (OSError, ValueError) as e:
        print(f"cannot load schema {args.schema}: {e}", file=sys.stderr)
        return 2
    except SchemaError as e:
        print(f"invalid schema {args.schema}: {e.message}", file=sys.stderr)
        return 2
    app = AlertConsumer(args, validator)
    signal.signal(signal.SIGINT, app.stop)
    signal.signal(signal.SIGTERM, app.stop)
    return app.run()


if __name__ == "__main__":
    sys.exit(main())
