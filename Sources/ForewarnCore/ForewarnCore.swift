// ForewarnCore owns the domain types every role shares: `Reading`, the MQTT topic
// template, the payload codecs (MQTT input forms → readings, readings → canonical JSON),
// the dead-letter reasons, and configuration (file + environment + flags, validated
// with errors that name the key). It performs no network I/O.
