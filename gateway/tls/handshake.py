"""Why a TLS handshake failed, in the few words the log and the counters use.

A plain MQTT or NATS client on a TLS port, a certificate from an unknown CA,
an expired certificate, no certificate where one is required, a handshake
that does not finish in time: each is one reason, counted per listener.
"""

from __future__ import annotations

import ssl

NOT_TLS = "not TLS"
UNKNOWN_CA = "unknown CA"
EXPIRED = "expired"
NOT_YET_VALID = "not yet valid"
REVOKED = "revoked"
NO_CERTIFICATE = "no certificate"
NOT_AUTHORIZED = "not authorized"
NOT_PINNED = "not pinned"
TIMEOUT = "timeout"
CLOSED = "closed during handshake"

# OpenSSL X509_V_ERR_* codes (x509_vfy.h).
_VERIFY_CODES = {
    2: UNKNOWN_CA,  # unable to get issuer certificate
    9: NOT_YET_VALID,
    10: EXPIRED,
    18: UNKNOWN_CA,  # self-signed certificate
    19: UNKNOWN_CA,  # self-signed certificate in chain
    20: UNKNOWN_CA,  # unable to get local issuer certificate
    21: UNKNOWN_CA,  # unable to verify the first certificate
    23: REVOKED,
}
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "UNKNOWN_PROTOCOL",
        "RECORD_LAYER_FAILURE",
    }
)


def failure_reason(exc: BaseException) -> str:
    """A short reason for a failed server-side handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _VERIFY_CODES.get(exc.verify_code, f"certificate: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _NOT_TLS_REASONS:
            return NOT_TLS
        if reason in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"):
            return NO_CERTIFICATE
        if reason == "TLSV1_ALERT_UNKNOWN_CA":
            return "client does not trust our certificate"
        return f"TLS error: {reason or exc}"
    if isinstance(exc, TimeoutError) or "longer than" in str(exc):
        return TIMEOUT
    return CLOSED
