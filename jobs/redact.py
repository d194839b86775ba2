"""Secret redaction for the ledger's copy of the configuration (runs.config_json).

Cloud credentials usually travel in spark.conf (fs.s3a.secret.key, fs.azure.account.key.<account>...), and the
ledger is readable by everyone who reads the lake. The rule works on key segments, not substrings, so that
`llm.max_tokens` or `tokenizer` stay readable while `fs.s3a.session.token` does not.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***redacted***"
# A key is secret when one of its segments (split on . _ - and camelCase) is one of these.
SECRET_SEGMENTS = frozenset({
    "key", "secret", "token", "password", "passwd", "pwd", "credential", "credentials", "sas", "keyfile",
    "apikey", "accesskey", "secretkey", "privatekey", "passphrase", "signature", "sig",
})
# ... unless its last segment says the value only names where the secret is: an environment variable
# (llm.openai.api_key_env) or a provider class (fs.s3a.aws.credentials.provider, fs.azure.sas.token.provider.type).
NAMING_SEGMENTS = frozenset({"env", "provider", "type"})
_SPLIT = re.compile(r"[._\-/\s]+|(?<=[a-z0-9])(?=[A-Z])")
# Secrets inside values: user:password@ in URIs and token=/password=/sig= parameters (sc://host:15002/;token=...).
_USERINFO = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")
_PARAM = re.compile(r"([;?&](?:" + "|".join(sorted(SECRET_SEGMENTS)) + r")=)[^;&\s]*", re.IGNORECASE)


def key_segments(key: str) -> list[str]:
    return [s.lower() for s in _SPLIT.split(key) if s]


def is_secret_key(key: str) -> bool:
    segments = key_segments(key)
    if not segments or segments[-1] in NAMING_SEGMENTS:
        return False
    return any(s in SECRET_SEGMENTS for s in segments)


def redact_value(text: str) -> str:
    return _PARAM.sub(rf"\1{REDACTED}", _USERINFO.sub(rf"\1{REDACTED}@", text))


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with secret-looking keys' values (at any depth) replaced by REDACTED."""
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_value(value)
    return value
