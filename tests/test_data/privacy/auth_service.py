"""Session handling for the web app: tokens, password checks, API keys from the environment."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
TOKEN_TYPE = "Bearer"
TOKEN_URL = "https://oauth2.example.com/token"
PASSWORD_MIN_LENGTH = 12
API_KEY_ENV = "ACME_API_KEY"
SECRET_KEY_FILE = "/run/secrets/app_secret_key"
password_field = "password_confirmation"
csrf_token = "{{ csrf_token }}"
db_password = os.environ.get("DB_PASSWORD", "")
api_key = os.environ["ACME_API_KEY"]
DEFAULT_PASSWORD = "changeme"
TEST_PASSWORD = "hunter2"
token_header = "X-Request-Token"
password_hash_algorithm = "pbkdf2_sha256"
session_key_prefix = "sess:v2:"


@dataclass(frozen=True)
class Session:
    user_id: int
    token: str
    expires_at: float


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token."""
    return secrets.token_urlsafe(nbytes)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 600_000)
    return f"pbkdf2_sha256${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    _, salt_hex, digest_hex = stored.split("$")
    expected = hash_password(password, bytes.fromhex(salt_hex))
    return hmac.compare_digest(expected.split("$")[2], digest_hex)


def parse_authorization(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != TOKEN_TYPE.lower() or not TOKEN_PATTERN.match(token):
        return None
    return token


def api_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "X-Api-Key": api_key}


def rotate(sessions: dict[str, Session], key: str) -> None:
    for token, session in list(sessions.items()):
        if session.token == key:
            del sessions[token]
