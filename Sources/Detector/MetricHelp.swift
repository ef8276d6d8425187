// The HELP text of every metric the detector emits, for `/metrics` (Prometheus requires one per
// family; swift-metrics has no place for it). A metric added without an entry here fails the
// promtool test.

public enum DetectorMetricHelp {
    public static let help: [String: String] = [
        "forewarn_detector_readings_total": "Readings scored by the models.",
        "forewarn_detector_duplicate_readings_total": "Readings skipped as duplicates by (gateway, seq).",
        "forewarn_detector_unparseable_readings_total": "Kafka records on the readings topic that are not canonical readings, skipped.",
        "forewarn_detector_alerts_total": "Alert events produced, by severity, state and kind.",
        "forewarn_detector_consumer_lag": "Readings not yet consumed, summed over the assigned partitions.",
        "forewarn_detector_partition_lag": "Readings not yet consumed, by partition.",
        "forewarn_detector_model_seconds": "Time to score one reading, in seconds (one reading in 16 per partition is timed).",
        "forewarn_detector_machines": "Machines with model state in the assigned partitions.",
        "forewarn_detector_machine_last_reading_timestamp_seconds": "Timestamp of the newest reading scored for each machine, in seconds since the epoch.",
        "forewarn_detector_stale_checkpoints_total": "Checkpoints not restored because the consumer group had moved past them (the partition warmed up instead).",
    ]
}
