"""MQTT 3.1.1 and 5.0: the sans-I/O codec, topic mapping and client sessions."""
