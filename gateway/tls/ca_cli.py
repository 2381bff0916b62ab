"""``jetgate ca ...``: the built-in certificate authority from the command line.

``init`` creates the CA, ``server`` issues a broker certificate for host names
and addresses, ``client NAME`` a client certificate (with ``--bundle DIR``:
``ca.crt``, ``client.crt``, ``client.key`` for mosquitto or paho), ``list``
shows what was issued and ``revoke`` adds certificates to the revoked list
that running gateways re-read. The CA directory is ``--dir``, else the
``ca_dir`` of a ``tls`` block in ``-c FILE``, else ``<store_dir>/ca``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from conf import ConfigError
from gateway.options import DEFAULT_STORE_DIR, load_options
from gateway.tls.ca import (
    DEFAULT_CA_DAYS,
    DEFAULT_CLIENT_DAYS,
    DEFAULT_SERVER_DAYS,
    BuiltinCA,
    default_ca_dir,
)
from gateway.tls.context import listener_blocks
from gateway.tls.errors import CertificateAuthorityError

EXIT_OK = 0
EXIT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    """``jetgate ca`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="jetgate ca", description="the built-in CA")
    parser.add_argument("-c", "--config", metavar="FILE", help="configuration file (for ca_dir)")
    parser.add_argument("--dir", metavar="DIR", help="CA directory (default <store_dir>/ca)")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create the CA")
    init.add_argument("--name", default="jetgate CA", help="the CA's Common Name")
    init.add_argument("--days", type=int, default=DEFAULT_CA_DAYS)
    server = sub.add_parser("server", help="issue a broker certificate")
    server.add_argument("hosts", nargs="+", metavar="HOST", help="DNS names and IP addresses")
    server.add_argument("--days", type=int, default=DEFAULT_SERVER_DAYS)
    server.add_argument("--out", metavar="DIR", help="where to write (default: the CA dir)")
    client = sub.add_parser("client", help="issue a client certificate")
    client.add_argument("name", help="Common Name (the user name with map_field: cn)")
    client.add_argument("--email", help="an e-mail subject alternative name")
    client.add_argument("--org", help="an Organization (O=) in the subject")
    client.add_argument("--days", type=int, default=DEFAULT_CLIENT_DAYS)
    client.add_argument("--bundle", metavar="DIR", help="write ca.crt, client.crt, client.key here")
    sub.add_parser("list", help="list issued certificates")
    revoke = sub.add_parser("revoke", help="revoke by client name or fingerprint")
    revoke.add_argument("what", nargs="+", metavar="NAME|FINGERPRINT")
    return parser


def ca_directory(args: argparse.Namespace) -> str:
    """``--dir``, else a ``tls`` block's ``ca_dir`` in ``--config``, else ``<store_dir>/ca``."""
    if args.dir:
        return str(args.dir)
    if args.config:
        options = load_options(args.config)
        for _, tls in listener_blocks(options):
            if tls.ca_dir:
                return tls.ca_dir
        return default_ca_dir(options.jetstream.store_dir)
    return default_ca_dir(DEFAULT_STORE_DIR)


def main(argv: Sequence[str]) -> int:
    """Run ``jetgate ca``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        directory = ca_directory(args)
        if args.command == "init":
            ca = BuiltinCA.init(directory, args.name, args.days)
            print(f"CA created in {directory}; clients trust {ca.cert_path}")
            return EXIT_OK
        ca = BuiltinCA.open(directory)
        if args.command == "server":
            cert, key = ca.issue_server(args.hosts, args.days, args.out)
            print(f"broker certificate {cert}, key {key}")
        elif args.command == "client":
            files = ca.issue_client(
                args.name,
                email=args.email,
                days=args.days,
                out_dir=args.bundle,
                organization=args.org,
            )
            print(f"client certificate {files.cert}, key {files.key}, CA {files.ca}")
            print(f"fingerprint {files.fingerprint}")
            print(f"mosquitto_pub --cafile {files.ca} --cert {files.cert} --key {files.key} ...")
        elif args.command == "list":
            for c in ca.issued():
                state = "REVOKED" if c.revoked else "valid"
                print(f"{c.fingerprint}  {c.kind:6}  {c.not_after:%Y-%m-%d}  {state:7}  {c.name}")
        elif args.command == "revoke":
            for what in args.what:
                for c in ca.revoke(what):
                    print(f"revoked {c.fingerprint} ({c.name})")
    except (CertificateAuthorityError, ConfigError, OSError) as exc:
        print(f"jetgate ca: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
