"""Unit tests of the consumer's pure logic: schema validation, de-duplication, formatting.

No Kafka needed: python -m pytest examples/python-alerts -q
"""

import copy
import json
import urllib.error
from pathlib import Path

import pytest

import alerts_consumer as ac

SCHEMA = Path(__file__).resolve().parent.parent.parent / "docs" / "alert.schema.json"

OPEN = {
    "alert_id": "p1-1767226200000-machine",
    "machine": "p1",
    "site": "s1",
    "state": "open",
    "severity": "critical",
    "kind": "machine",
    "model": "limit",
    "sensors": ["vib_rms"],
    "score": 0.97,
    "threshold": 0.5,
    "opened_at": 1767226200000,
    "ts": 1767226200000,
    "evidence": {"vib_rms_z": 41.2, "vib_rms_limit_ratio": 1.27},
    "time_to_threshold_s": None,
}


def event(**changes):
    e = copy.deepcopy(OPEN)
    e.update(changes)
    return e


def raw(e):
    return json.dumps(e).encode()


@pytest.fixture(scope="module")
def validator():
    return ac.load_validator(SCHEMA)


# --- validation ---

def test_default_schema_path_is_the_repos():
    assert ac.DEFAULT_SCHEMA == SCHEMA
    assert SCHEMA.is_file()


def test_valid_events_pass(validator):
    for e in [OPEN, event(state="update", ts=OPEN["ts"] + 5000, time_to_threshold_s=120.5),
              event(state="resolved", severity="info", ts=OPEN["ts"] + 60000),
              event(kind="sensor", model="stuck", alert_id="p1-1767226200000-sensor-temp_c", evidence={})]:
        parsed, reason = ac.parse_event(raw(e), validator)
        assert reason is None
        assert parsed == e


def test_accepts_str_input(validator):
    parsed, reason = ac.parse_event(json.dumps(OPEN), validator)
    assert reason is None and parsed == OPEN


@pytest.mark.parametrize("bad, expected", [
    (event(state="opened"), "state"),
    (event(severity="fatal"), "severity"),
    (event(kind="pump"), "kind"),
    (event(score=1.5), "score"),
    (event(threshold=-0.1), "threshold"),
    (event(alert_id=""), "alert_id"),
    (event(ts="1767226200000"), "ts"),
    (event(opened_at=1.5), "opened_at"),
    (event(sensors="vib_rms"), "sensors"),
    (event(evidence={"z": "high"}), "evidence/z"),
    (event(time_to_threshold_s="soon"), "time_to_threshold_s"),
    (event(extra_field=1), "extra_field"),
    ({k: v for k, v in OPEN.items() if k != "machine"}, "'machine' is a required property"),
])
def test_schema_violations_are_reported_not_raised(validator, bad, expected):
    parsed, reason = ac.parse_event(raw(bad), validator)
    assert parsed is None
    assert reason.startswith("schema validation failed")
    assert expected in reason


@pytest.mark.parametrize("value, expected", [
    (b"not json", "not JSON"),
    (b"", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b'{"score": NaN}', "not JSON"),
    (b"[1, 2]", "schema validation failed"),
    (b"null", "schema validation failed"),
    (None, "empty record"),
])
def test_garbage_is_reported_not_raised(validator, value, expected):
    parsed, reason = ac.parse_event(value, validator)
    assert parsed is None
    assert expected in reason


def test_many_errors_are_summarised(validator):
    parsed, reason = ac.parse_event(b"{}", validator)
    assert parsed is None
    assert "and 9 more" in reason  # 14 required properties, 5 listed


def test_broken_schema_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": 12}')
    with pytest.raises(ac.SchemaError):
        ac.load_validator(bad)


# --- de-duplication ---

def test_dedupe_keys():
    assert ac.dedupe_key(OPEN) == (OPEN["alert_id"], "open")
    assert ac.dedupe_key(event(state="resolved", ts=9)) == (OPEN["alert_id"], "resolved")
    assert ac.dedupe_key(event(state="update", ts=9)) == (OPEN["alert_id"], "update", 9)
    # open/resolved ignore ts: a re-sent open with another ts is still the same event
    assert ac.dedupe_key(event(ts=1)) == ac.dedupe_key(event(ts=2))
    # updates at different times are different events
    assert ac.dedupe_key(event(state="update", ts=1)) != ac.dedupe_key(event(state="update", ts=2))


def test_episode_with_duplicates_prints_each_event_once():
    stream = [
        OPEN,
        event(state="update", ts=OPEN["ts"] + 1000),
        event(state="update", ts=OPEN["ts"] + 2000),
        OPEN,  # redelivered
        event(state="update", ts=OPEN["ts"] + 1000),  # redelivered
        event(state="resolved", ts=OPEN["ts"] + 9000),
        event(state="resolved", ts=OPEN["ts"] + 9000),  # redelivered
        event(alert_id="p2-1-machine", machine="p2"),  # another episode
    ]
    d = ac.Deduplicator()
    new = []
    for e in stream:
        k = ac.dedupe_key(e)
        if not d.is_duplicate(k):
            d.remember(k)
            new.append((e["alert_id"], e["state"], e["ts"]))
    assert new == [
        (OPEN["alert_id"], "open", OPEN["ts"]),
        (OPEN["alert_id"], "update", OPEN["ts"] + 1000),
        (OPEN["alert_id"], "update", OPEN["ts"] + 2000),
        (OPEN["alert_id"], "resolved", OPEN["ts"] + 9000),
        ("p2-1-machine", "open", OPEN["ts"]),
    ]


def test_unhandled_event_is_not_remembered():
    # is_duplicate alone does not record: an event whose handling failed is handled again
    d = ac.Deduplicator()
    assert not d.is_duplicate("k")
    assert not d.is_duplicate("k")
    d.remember("k")
    assert d.is_duplicate("k")


def test_lru_is_bounded_and_forgets_least_recently_seen():
    d = ac.Deduplicator(capacity=3)
    for k in "abc":
        d.remember(k)
    assert d.is_duplicate("a")  # a is now the most recently seen
    d.remember("d")  # evicts b
    assert len(d) == 3
    assert "b" not in d
    assert all(k in d for k in "acd")
    for i in range(1000):
        d.remember(i)
    assert len(d) == 3


def test_default_capacity_and_validation():
    assert ac.Deduplicator().capacity == 100_000
    with pytest.raises(ValueError):
        ac.Deduplicator(capacity=0)


# --- output ---

def test_format_event_is_one_readable_line():
    line = ac.format_event(event(time_to_threshold_s=90.4))
    assert "\n" not in line
    assert line.startswith("2026-01-01T00:10:00.000Z OPEN")
    for part in ["critical", "s1/p1", "model=limit", "sensors=vib_rms", "score=0.970", "time_to_threshold=90s",
                 f"alert_id={OPEN['alert_id']}"]:
        assert part in line
    assert "time_to_threshold=n/a" in ac.format_event(OPEN)


def test_json_line_keeps_the_record_and_stays_on_one_line():
    compact = raw(OPEN)
    assert ac.json_line(compact, OPEN) == compact.decode()
    pretty = json.dumps(OPEN, indent=2).encode()
    line = ac.json_line(pretty, OPEN)
    assert "\n" not in line and json.loads(line) == OPEN


# --- webhook retries (no network: urlopen is replaced) ---

class FakeResponse:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def read(self):
        return b""


def test_webhook_retries_with_backoff_then_succeeds(monkeypatch):
    calls, sleeps = [], []

    def urlopen(request, timeout):
        calls.append(request)
        if len(calls) < 3:
            raise urllib.error.URLError("connection refused")
        return FakeResponse()

    monkeypatch.setattr(ac.urllib.request, "urlopen", urlopen)
    ac.post_webhook("http://hook", OPEN, retries=5, backoff=0.5, sleep=sleeps.append)
    assert len(calls) == 3
    assert sleeps == [0.5, 1.0]
    assert json.loads(calls[0].data) == OPEN
    assert calls[0].get_header("Content-type") == "application/json"
    assert calls[0].get_header("Idempotency-key") == f"{OPEN['alert_id']}:open"


def test_webhook_gives_up_after_bounded_retries(monkeypatch):
    sleeps = []

    def urlopen(request, timeout):
        raise urllib.error.HTTPError("http://hook", 503, "Service Unavailable", {}, None)

    monkeypatch.setattr(ac.urllib.request, "urlopen", urlopen)
    with pytest.raises(ac.WebhookUnavailable, match="503.*after 4 attempts"):
        ac.post_webhook("http://hook", OPEN, retries=3, backoff=4, max_backoff=10, sleep=sleeps.append)
    assert sleeps == [4, 8, 10]


def test_webhook_permanent_refusal_is_not_retried(monkeypatch):
    calls = []

    def urlopen(request, timeout):
        calls.append(request)
        raise urllib.error.HTTPError("http://hook", 400, "Bad Request", {}, None)

    monkeypatch.setattr(ac.urllib.request, "urlopen", urlopen)
    with pytest.raises(ac.WebhookRejected):
        ac.post_webhook("http://hook", OPEN, retries=5, sleep=lambda s: None)
    assert len(calls) == 1


def test_webhook_stops_retrying_on_shutdown(monkeypatch):
    def urlopen(request, timeout):
        raise urllib.error.URLError("down")

    monkeypatch.setattr(ac.urllib.request, "urlopen", urlopen)
    with pytest.raises(ac.WebhookUnavailable, match="after 1 attempts"):
        ac.post_webhook("http://hook", OPEN, retries=5, stop=lambda: True, sleep=lambda s: None)


# --- options ---

def test_options():
    a = ac.parse_args(["--bootstrap", "b:1", "--group", "g", "--json", "--max-seconds", "5", "--max-events", "3",
                       "--from-beginning", "-X", "security.protocol=SASL_SSL"])
    assert (a.bootstrap, a.group, a.topic, a.json, a.max_seconds, a.max_events, a.from_beginning) == \
        ("b:1", "g", "forewarn.alerts", True, 5.0, 3, True)
    assert a.properties == ["security.protocol=SASL_SSL"]
    assert a.schema == str(SCHEMA)
    with pytest.raises(SystemExit):
        ac.parse_args(["-X", "novalue"])
