"""Operator mode: ``operator``, ``trusted_keys``, ``system_account``, ``resolver``, ``resolver_preload``.

Only the structure is checked here (key prefixes, files that exist, resolver
kinds and their allowed settings); JWT signatures are verified by
``gateway.auth`` when the server starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.options.auth import is_public_nkey
from gateway.options.model import Resolver
from gateway.options.reader import (
    Block,
    Context,
    Entry,
    as_bool,
    as_duration,
    as_int,
    as_map,
    as_str,
    as_str_list,
    describe,
    position_of,
)

_INLINE_JWT = "eyJ"
_URL_RESOLVER = re.compile(r'^\s*URL\(\s*"?([^\s")]*)"?\s*\)\s*$', re.IGNORECASE)


def parse_operators(ctx: Context, e: Entry) -> tuple[str, ...]:
    """``operator``: a path to an operator JWT file, an inline JWT, or an array of either."""
    values = as_str_list(ctx, e, allow_empty=False)
    if values is None:
        return ()
    out: list[str] = []
    for value in values:
        if value.startswith(_INLINE_JWT) or os.path.isfile(value):
            out.append(value)
        else:
            ctx.error(
                e.pos,
                f'error parsing operator JWT: "{value}" is neither a readable file '
                "nor an inline JWT",
            )
    return tuple(out)


def parse_trusted_keys(ctx: Context, e: Entry) -> tuple[str, ...]:
    """``trusted_keys``: public operator nkeys."""
    keys = as_str_list(ctx, e) or ()
    for key in keys:
        if not is_public_nkey(key, "O"):
            ctx.error(e.pos, f'trust key "{key}" required to be a valid public operator nkey')
            return ()
    return keys


_RESOLVER_KEYS: dict[str, tuple[str, ...]] = {
    "type": (),
    "dir": (),
    "allow_delete": (),
    "hard_delete": (),
    "limit": (),
    "ttl": (),
    "interval": (),
    "timeout": (),
}
_RESOLVER_MESSAGE = (
    'error parsing account resolver, should be MEM or URL("url") or a map '
    "containing dir and type state=[FULL|CACHE]"
)


def parse_resolver(ctx: Context, e: Entry) -> Resolver | None:
    """``resolver``: ``MEMORY``/``MEM``, ``URL("...")``, or a map with ``type`` full or cache."""
    if isinstance(e.value, str):
        if "mem" in e.value.lower():
            return Resolver(kind="memory")
        match = _URL_RESOLVER.match(e.value)
        if match and match.group(1).startswith(("http://", "https://")):
            return Resolver(kind="url", url=match.group(1))
        ctx.error(e.pos, _RESOLVER_MESSAGE)
        return None
    resolver_map = as_map(ctx, e)
    if resolver_map is None:
        return None
    b = Block(ctx, resolver_map, "the resolver block", _RESOLVER_KEYS)
    type_entry = b.get("type")
    kind = (as_str(ctx, type_entry) or "").lower() if type_entry else ""
    if kind in ("mem", "memory"):
        return Resolver(kind="memory")
    if kind not in ("full", "cache"):
        ctx.error(type_entry.pos if type_entry else e.pos, _RESOLVER_MESSAGE)
        return None
    out: dict[str, Any] = {}
    if (entry := b.get("dir")) is not None:
        out["dir"] = as_str(ctx, entry, allow_empty=False)
        if out["dir"] and os.path.exists(out["dir"]) and not os.path.isdir(out["dir"]):
            ctx.error(entry.pos, "dir needs to point to an accessible directory")
    else:
        ctx.error(e.pos, "dir has no value and needs to point to a directory")
    for name in ("allow_delete", "hard_delete"):
        if (entry := b.get(name)) is not None:
            out[name] = as_bool(ctx, entry)
    if (entry := b.get("limit")) is not None:
        out["limit"] = as_int(ctx, entry, low=0)
    for name in ("ttl", "interval", "timeout"):
        if (entry := b.get(name)) is not None:
            out[name] = as_duration(ctx, entry, name=name, warn_number=False)
    if kind == "cache":
        for name in ("allow_delete", "hard_delete", "interval"):
            if (entry := b.get(name)) is not None:
                ctx.error(entry.pos, f"CACHE does not accept {name}")
    else:
        if (entry := b.get("ttl")) is not None:
            ctx.error(entry.pos, "FULL does not accept ttl")
        if out.get("hard_delete") and not out.get("allow_delete"):
            entry = b.get("hard_delete")
            ctx.error(entry.pos if entry else e.pos, "hard_delete requires allow_delete")
    return Resolver(
        kind="full" if kind == "full" else "cache",
        **{k: v for k, v in out.items() if v is not None},
    )


def parse_resolver_preload(ctx: Context, e: Entry) -> Mapping[str, str]:
    """``resolver_preload``: account public key -> account JWT."""
    if not isinstance(e.value, Mapping):
        ctx.error(e.pos, "preload should be a map of account_public_key:account_jwt")
        return MappingProxyType({})
    out: dict[str, str] = {}
    for key, value in e.value.items():
        pos = position_of(e.value, key)
        if not is_public_nkey(key, "A"):
            ctx.error(pos, f'resolver_preload key "{key}" is not a public account nkey')
        elif not isinstance(value, str):
            ctx.error(pos, f"preload map value should be a string JWT, got {describe(value)}")
        elif not value.startswith(_INLINE_JWT) or value.count(".") != 2:
            ctx.error(pos, "invalid account JWT")
        else:
            out[key] = value
    return MappingProxyType(out)
