"""Typed, validated jetgate options built from a NATS-style configuration file.

``load_options(path)`` reads a file (or, for ``None``, returns the built-in
embedded defaults) and ``build_options(conf_map)`` converts an already parsed
``conf.ConfMap``. Both raise ``conf.ConfigErrors`` listing every mistake, each
as ``FILE:LINE:COL: message`` at the offending key. Keys are matched
case-insensitively with the NATS server's aliases; a key the NATS server knows
but jetgate does not implement (``cluster``, ``leafnodes``, ...) is ignored
with a warning (``Options.warnings``), and an unknown key is an error with a
"did you mean" suggestion.

The result is a tree of frozen dataclasses; ``Options.with_overrides`` applies
command line flags, and ``dataclasses.replace`` anything else.
"""

from gateway.options.build import build_options, load_options
from gateway.options.model import (
    DEFAULT_MQTT_PORT,
    DEFAULT_PORT,
    DEFAULT_STORE_DIR,
    Account,
    AccountJetStream,
    AccountLimits,
    Authorization,
    ConnectionType,
    Export,
    Import,
    JetStreamOptions,
    MQTTOptions,
    Options,
    Permissions,
    Resolver,
    ResponsePermission,
    SimpleAuth,
    SubjectPermission,
    TLSOptions,
    UpstreamOptions,
    User,
    WebsocketOptions,
    bind_port,
)
from gateway.options.reader import RANDOM_PORT

__all__ = [
    "DEFAULT_MQTT_PORT",
    "DEFAULT_PORT",
    "DEFAULT_STORE_DIR",
    "RANDOM_PORT",
    "Account",
    "AccountJetStream",
    "AccountLimits",
    "Authorization",
    "ConnectionType",
    "Export",
    "Import",
    "JetStreamOptions",
    "MQTTOptions",
    "Options",
    "Permissions",
    "Resolver",
    "ResponsePermission",
    "SimpleAuth",
    "SubjectPermission",
    "TLSOptions",
    "UpstreamOptions",
    "User",
    "WebsocketOptions",
    "bind_port",
    "build_options",
    "load_options",
]
