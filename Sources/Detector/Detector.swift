// Detector owns the detection service: a Kafka consumer group on the readings topic,
// one MachineDetector per machine, alerts to the alerts topic. (Under construction.)
