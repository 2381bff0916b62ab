"""The JetStream-style log: streams, durable consumers, acks and key-value buckets.

Two backends sit behind one interface: ``streams.embedded`` (jetgate's own
on-disk store) and a backend on real JetStream. This package knows nothing of
MQTT or auth.
"""
