// The HELP text of every metric the gateway emits, for `/metrics` (Prometheus requires one per
// family; swift-metrics has no place for it). A metric added without an entry here fails the
// promtool test.

public enum GatewayMetricHelp {
    public static let help: [String: String] = [
        "forewarn_gateway_readings_in_total": "Readings accepted from MQTT and written to the journal.",
        "forewarn_gateway_mqtt_messages_total": "MQTT messages received (one message may carry several readings).",
        "forewarn_gateway_mqtt_redeliveries_dropped_total": "MQTT redeliveries of messages already journaled, dropped as duplicates.",
        "forewarn_gateway_rejected_total": "MQTT messages rejected and sent to the dead-letter topic, by reason.",
        "forewarn_gateway_dropped_total": "Journaled readings dropped before delivery (journal full under drop-oldest, or past journal.max-age), by machine and reason.",
        "forewarn_gateway_readings_out_total": "Readings delivered to Kafka and acknowledged.",
        "forewarn_gateway_deadletters_out_total": "Dead letters delivered to Kafka and acknowledged.",
        "forewarn_gateway_kafka_delivery_errors_total": "Kafka delivery reports with an error (the entry stays in the journal and is sent again), by error kind.",
        "forewarn_gateway_kafka_reachable": "1 when a Kafka broker answered the last metadata probe, else 0.",
        "forewarn_gateway_kafka_in_flight": "Journal entries handed to librdkafka and not yet reported.",
        "forewarn_gateway_mqtt_connected": "1 while connected to the MQTT broker, else 0.",
        "forewarn_gateway_backpressure": "1 while MQTT intake is paused because the journal is full (journal.full-policy backpressure), else 0.",
        "forewarn_gateway_journal_bytes": "Size of the journal's undelivered entries in bytes.",
        "forewarn_gateway_journal_readings": "Undelivered entries in the journal.",
        "forewarn_gateway_journal_oldest_age_seconds": "Age of the oldest undelivered journal entry in seconds.",
        "forewarn_gateway_journal_free_bytes": "Free bytes on the file system of the state directory, as last measured.",
        "forewarn_gateway_journal_wal_pending_bytes": "Bytes of WAL pages no checkpoint has copied into the journal yet (the room the next checkpoint may need), as last measured.",
        "forewarn_gateway_journal_min_free_bytes": "The free-space reserve (journal.min-free-bytes) below which MQTT intake pauses, in bytes.",
        "forewarn_gateway_journal_ballast_bytes": "Bytes the ballast file (journal.ballast-bytes) holds back in the state directory now; 0 while it is released or off.",
        "forewarn_gateway_journal_ballast_releases_total": "Times the ballast file was deleted to give SQLite room for deletes and checkpoints on a full disk.",
        "forewarn_gateway_journal_kept_in_memory": "Acknowledged entries the journal could not write yet and keeps in memory to retry.",
        "forewarn_gateway_journal_write_failures_total": "Journal writes that failed (disk full, read-only, vanished); intake pauses until a write succeeds.",
        "forewarn_gateway_intake_paused": "1 while MQTT intake is paused for this reason (journal-full, disk-low, disk-read-only, journal-vanished, write-failing), else 0.",
    ]
}
