"""Unit tests for nearline.escalation.privacy: local_only globs, the secret scanner and the refusal.

Fake secrets are put together at run time, so this file holds no token that a secret scanner
(ours, or a forge's push protection) would flag.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from nearline.errors import PrivacyError
from nearline.escalation.privacy import (
    Finding,
    check,
    ensure_shareable,
    entropy,
    local_only_match,
    refuse_message,
    scan_secrets,
)

DATA = Path(__file__).resolve().parent / "test_data" / "privacy"
SERVER = Path(__file__).resolve().parents[1] / "server" / "nearline"
DEFAULT_GLOBS = (".env", "*.env", ".env.*", "secrets/**", "*.pem", "*.key", "id_rsa*", "*.p12")


def chars(n: int, seed: str = "aB3dE5gH7jK9mN1pQ2sT4vW6yZ8cF0") -> str:
    """``n`` varied letters and digits."""
    return (seed * (n // len(seed) + 1))[:n]


AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
JWT = ".".join(
    (
        "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJ" + "zdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    )
)
RSA_KEY = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEA" + chars(48) + "\n"
    + chars(64) + "\n-----END RSA PRIVATE KEY-----\n"
)  # fmt: skip

# (kind, a line holding the secret, the secret)
SECRETS: list[tuple[str, str, str]] = [
    ("aws_access_key_id", f'AWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"', AWS_KEY_ID),
    ("aws_access_key_id", "key=" + "ASIA" + "XYZ1234567890ABC", "ASIA" + "XYZ1234567890ABC"),
    ("aws_secret_access_key", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    ("aws_secret_access_key", f'"SecretAccessKey": "{AWS_SECRET}",', AWS_SECRET),
    ("private_key", RSA_KEY, chars(48)),
    (
        "private_key",
        "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA" + chars(40),
        chars(40),
    ),
    (
        "private_key",
        '{"private_key": "-----BEGIN ' + "PRIVATE KEY-----\\nMIIEvQIBADANBgkq" + chars(40) + '"}',
        chars(40),
    ),
    (
        "private_key",
        "-----BEGIN RSA " + "PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        "DEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n" + chars(64),
        chars(64),
    ),
    ("github_token", "token = " + "ghp_" + chars(36), "ghp_" + chars(36)),
    ("github_token", "gho_" + chars(36), "gho_" + chars(36)),
    ("github_token", "ghu_" + chars(36), "ghu_" + chars(36)),
    ("github_token", "ghs_" + chars(36), "ghs_" + chars(36)),
    ("github_token", "ghr_" + chars(36), "ghr_" + chars(36)),
    (
        "github_token",
        "GH=" + "github_pat_" + chars(22) + "_" + chars(59, "Zy9Xw8"),
        "github_pat_" + chars(22),
    ),
    ("slack_token", "xoxb-" + "123456789012-1234567890123-" + chars(24), chars(24)),
    ("slack_token", "xoxp-" + "123456789012-" + chars(32), chars(32)),
    ("slack_token", "xoxa-2-" + chars(30), chars(30)),
    ("slack_token", "xoxr-" + chars(30), chars(30)),
    ("slack_token", "xoxs-" + chars(30), chars(30)),
    ("slack_token", "xoxo-" + chars(30), chars(30)),
    ("openai_key", 'OPENAI_API_KEY="' + "sk-" + chars(48) + '"', "sk-" + chars(48)),
    (
        "openai_key",
        "client = OpenAI(api_key='" + "sk-proj-" + chars(40) + "_" + chars(20) + "')",
        "sk-proj-" + chars(40),
    ),
    ("anthropic_key", "key: " + "sk-ant-api03-" + chars(90) + "AA", "sk-ant-api03-" + chars(90)),
    (
        "google_api_key",
        'const key = "' + "AIza" + "Sy" + chars(33) + '";',
        "AIza" + "Sy" + chars(33),
    ),
    (
        "stripe_live_key",
        "stripe.api_key = '" + "sk_live_" + chars(24) + "'",
        "sk_live_" + chars(24),
    ),
    ("stripe_live_key", "rk_live_" + chars(24), "rk_live_" + chars(24)),
    ("jwt", f'headers = {{"Authorization": "Bearer {JWT}"}}', JWT),
    ("generic_secret", 'DB_PASSWORD = "' + "Zx81kLmQ02prT7wq" + '"', "Zx81kLmQ02prT7wq"),
    ("generic_secret", "export API_TOKEN=" + "f3a9c2e17b4d8a06", "f3a9c2e17b4d8a06"),
    ("generic_secret", 'config["client_secret"] = "' + chars(20) + '"', chars(20)),
    ("generic_secret", '  "apiKey": "' + chars(32) + '",', chars(32)),
    ("generic_secret", "db_pass: " + "Qm7#xT2!vL9@pR4s", "Qm7#xT2!vL9@pR4s"),
    ("generic_secret", 'SECRET_KEY: str = "' + "django-insecure-" + chars(40) + '"', chars(40)),
    ("generic_secret", "connect(password='" + "hJ8kL2pQ9wX4zR7t" + "')", "hJ8kL2pQ9wX4zR7t"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), SECRETS)
def test_each_secret_kind_is_found(kind: str, text: str, secret: str) -> None:
    findings = scan_secrets("import os\n\n" + text + "\nprint('done')\n", "app/config.py")
    assert [f.kind for f in findings] == [kind]
    assert findings[0].path == "app/config.py"
    assert findings[0].line == 2


@pytest.mark.parametrize(("kind", "text", "secret"), SECRETS)
def test_details_and_message_never_hold_the_secret(kind: str, text: str, secret: str) -> None:
    findings = scan_secrets(text, "f.py")
    message = refuse_message(findings)
    for f in findings:
        for i in range(len(secret) - 7):
            assert secret[i : i + 8] not in f.detail
    for i in range(len(secret) - 7):
        assert secret[i : i + 8] not in message


def test_fake_aws_key_file_is_found() -> None:
    text = f"[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    findings = scan_secrets(text, "/home/me/.aws/credentials")
    assert [(f.line, f.kind, f.detail) for f in findings] == [
        (1, "aws_access_key_id", "AWS access key id"),
        (2, "aws_secret_access_key", "AWS secret access key"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        'password = "changeme"',
        'password = "hunter2"',
        'PASSWORD = "password123"',
        'api_key = "your-api-key-here"',
        'api_key = "<YOUR_API_KEY>"',
        'token = "${GITHUB_TOKEN}"',
        'secret = "{{ secret }}"',
        'token = "xxxxxxxxxxxxxxxxxxxx"',
        'token = "****************"',
        'password_field = "password_confirmation"',
        'password = "correct-horse-battery-staple"',
        'TOKEN_TYPE = "Bearer"',
        'token_url = "https://example.com/oauth/token"',
        'private_key_path = "/etc/ssl/private/server.key"',
        'tokenizer = "bert-base-uncased-v2"',
        'public_key = "' + chars(32) + '"',
        'publicKeyToken="1fc8b3b9a1e18e3b"',
        'session_id = "' + chars(32) + '"',
        'password_hash = "pbkdf2_sha256$600000$' + chars(22) + '"',
        'assert token == "' + chars(32) + '"',
        'label = "token"; value = "' + chars(20) + '"',
        'api_key = os.environ["ACME_API_KEY_V2"]',
        "api_key = settings.ACME_API_KEY_FALLBACK",
        "password = test_fixture_password_2024",
        'KEY_PATTERN = r"[A-Za-z0-9]{32}"',
        'api_key = "sk-..."',
        'GITHUB_TOKEN = "ghp_' + "x" * 36 + '"',
        "sk-" + "scikit-learn-compatible-estimator-wrapper",
        "sk-" + "a" * 48,
        "AKIA" + "iosfodnn7example",
        "xoxb-" + "your-bot-token-here",
        "if line == '-----BEGIN RSA " + "PRIVATE KEY-----':",
        'PEM_HEADER = "-----BEGIN ' + 'PRIVATE KEY-----\\n"',
        "sk_test_" + chars(24),
        'key = "' + "a1b2" * 4 + '"',
        "git_sha = 'e83c5163316f89bfbde7d9ab23ca2e25604af290'",
        'uuid = "123e4567-e89b-12d3-a456-426614174000"',
        '"integrity": "sha512-' + chars(86) + '=="',
    ],
)
def test_look_alikes_are_not_secrets(text: str) -> None:
    assert scan_secrets(text) == []


@pytest.mark.parametrize(
    "name", ["auth_service.py", "client.ts", "settings.yaml", "package-lock.json", "README.md"]
)
def test_ordinary_files_give_nothing(name: str) -> None:
    assert scan_secrets((DATA / name).read_text(encoding="utf-8"), name) == []


def test_nearline_sources_give_nothing() -> None:
    for path in sorted(SERVER.rglob("*.py")):
        assert scan_secrets(path.read_text(encoding="utf-8"), str(path)) == [], path


def test_line_numbers_with_crlf_and_many_findings() -> None:
    text = "a = 1\r\n" + "".join(f"k{i} = '{'ghp_' + chars(36)}'\r\n" for i in range(3))
    findings = scan_secrets(text)
    assert [f.line for f in findings] == [1, 2, 3]
    assert scan_secrets("x = 1\r\nAPI_TOKEN=f3a9c2e17b4d8a06\r\n")[0].line == 1


def test_one_finding_per_line_and_kind() -> None:
    text = f"keys = ['{AWS_KEY_ID}', '{AWS_KEY_ID}']  # {AWS_KEY_ID}\n"
    assert len(scan_secrets(text)) == 1


def test_big_file_scans_fast() -> None:
    code = "".join(
        (DATA / name).read_text(encoding="utf-8")
        for name in ("auth_service.py", "client.ts", "settings.yaml", "package-lock.json")
    )
    text = code * (1_000_000 // len(code) + 1)
    text = text[: text.rfind("\n", 0, 1_000_000) + 1]
    text += f"AWS_ACCESS_KEY_ID = '{AWS_KEY_ID}'\n"
    assert len(text) > 990_000
    findings = scan_secrets(text, "big.py")
    assert [(f.kind, f.line) for f in findings] == [("aws_access_key_id", text.count("\n") - 1)]
    assert best_time(lambda: scan_secrets(text)) < 0.5


def test_big_single_line_scans_fast() -> None:
    # Minified code: one long line full of hint words must not make the scan quadratic.
    text = "var a_key=x,token=y;" * 50_000 + "key" + "a" * 100_000 + "=1"
    assert scan_secrets(text) == []
    assert best_time(lambda: scan_secrets(text)) < 0.5


def test_file_of_secret_names_scans_in_linear_time() -> None:
    # Every line assigns a secret-sounding name a long literal, so each gets the close look:
    # the worst case, slower per line than code, but not quadratic.
    text = "".join(f'  "api_key_{i}": "value-number-{i:08d}",\n' for i in range(6_000))
    assert len(text) > 250_000
    start = time.perf_counter()
    assert scan_secrets(text) == []
    assert time.perf_counter() - start < 1.0


def best_time(scan: Callable[[], object], tries: int = 3) -> float:
    """The fastest of a few runs, so a busy machine does not fail the test."""
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        scan()
        times.append(time.perf_counter() - start)
    return min(times)


def test_entropy() -> None:
    assert entropy("") == 0
    assert entropy("aaaa") == 0
    assert entropy("abcd") == 2
    assert entropy("ab" * 8) == 1


# -- local_only globs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "glob"),
    [
        ("/w/proj/.env", ".env"),
        ("/w/proj/deploy/prod.env", "*.env"),
        ("/w/proj/.env.local", ".env.*"),
        ("/w/proj/secrets/db.txt", "secrets/**"),
        ("/w/proj/app/secrets/deep/x.json", "secrets/**"),
        ("/w/proj/certs/server.pem", "*.pem"),
        ("/w/proj/tls/server.key", "*.key"),
        ("/home/me/.ssh/id_rsa", "id_rsa*"),
        ("/home/me/.ssh/id_rsa.pub", "id_rsa*"),
        ("/w/proj/store.p12", "*.p12"),
        ("file:///w/proj/.env", ".env"),
        ("file:///w/proj/my%20secrets/../secrets/a.txt", "secrets/**"),
        ("C:\\proj\\secrets\\a.txt", "secrets/**"),
        ("file:///C:/proj/config/local.env", "*.env"),
        # Not local:
        ("/w/proj/secrets", None),  # a file named secrets: 'secrets/**' is what is under one
        ("/w/proj/mysecrets/x.txt", None),
        ("/w/proj/secrets.py", None),
        ("/w/proj/src/env.py", None),
        ("/w/proj/.envrc", None),
        ("/w/proj/src/environment.ts", None),
        ("/w/proj/keys.py", None),
        ("/w/proj/SERVER.PEM", None),  # case-sensitive
        ("/w/proj/src/app.py", None),
    ],
)
def test_default_globs(path: str, glob: str | None) -> None:
    assert local_only_match(path, DEFAULT_GLOBS) == glob


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("/config/*.yaml", "/w/proj/config/prod.yaml", True),  # anchored at the root
        ("/config/*.yaml", "/w/proj/sub/config/prod.yaml", False),
        ("config/*.yaml", "/w/proj/sub/config/prod.yaml", True),  # unanchored: any depth
        ("config/*.yaml", "/w/proj/config/nested/prod.yaml", False),  # '*' is one component
        ("config/**/*.yaml", "/w/proj/config/nested/deep/prod.yaml", True),
        ("config/**/*.yaml", "/w/proj/config/prod.yaml", True),  # '**' may be nothing
        ("**/fixtures/*.json", "/w/proj/a/b/fixtures/x.json", True),
        ("build/", "/w/proj/build/out.js", True),  # a folder and all under it
        ("build/", "/w/proj/build", False),
        ("build", "/w/proj/build", True),
        ("build", "/w/proj/build/sub/out.js", True),
        ("private/notes", "/w/proj/private/notes/todo.md", True),
        ("*.sec?et", "/w/proj/a.secret", True),
        ("[ab].txt", "/w/proj/b.txt", True),
        ("[ab].txt", "/w/proj/c.txt", False),
        ("data/*.csv", "/w/proj/data/x.csv", True),
        ("/data/*.csv", "/elsewhere/data/x.csv", False),  # outside the root
    ],
)
def test_glob_semantics(glob: str, path: str, matches: bool) -> None:
    assert (local_only_match(path, [glob], root="/w/proj") == glob) is matches


def test_paths_are_relative_to_the_root() -> None:
    root = "/home/me/secrets/proj"
    path = "/home/me/secrets/proj/src/app.py"
    assert local_only_match(path, DEFAULT_GLOBS) == "secrets/**"
    assert local_only_match(path, DEFAULT_GLOBS, root=root) is None
    assert local_only_match("file:///home/me/secrets/proj/src/app.py", DEFAULT_GLOBS, root) is None
    assert local_only_match("src/app.py", ["/src/*.py"], root=root) == "/src/*.py"


def test_negated_glob_takes_a_match_back() -> None:
    globs = ["*.pem", "!public.pem"]
    assert local_only_match("/w/certs/public.pem", globs) is None
    assert local_only_match("/w/certs/server.pem", globs) == "*.pem"
    assert local_only_match("/w/certs/public.pem", [*globs, "certs/**"]) == "certs/**"


def test_no_globs_or_blank_globs() -> None:
    assert local_only_match("/w/.env", []) is None
    assert local_only_match("/w/.env", ["", "  ", "/"]) is None
    assert local_only_match("", DEFAULT_GLOBS) is None


@pytest.mark.parametrize("glob", ["*.env", "*.pem", "id_rsa*", ".env.*", "*.p1?", "[.]env"])
@pytest.mark.parametrize(
    "path", ["a/b/x.env", ".env", "x/.env.local", "k/id_rsa.pub", "c/store.p12", "z.pem", "y/pem"]
)
def test_basename_globs_agree_with_purepath_match(glob: str, path: str) -> None:
    # For a glob without '/', PurePath.match compares the last component, as we do.
    expected = PurePosixPath(path).match(glob)
    assert (local_only_match(path, [glob]) == glob) is expected


# -- check, refuse_message, ensure_shareable ---------------------------------------------------


def test_check_globs_then_scans() -> None:
    files = {
        "/w/proj/.env": f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\n",
        "/w/proj/src/app.py": f"import boto3\n\nKEY = '{AWS_KEY_ID}'\n",
        "/w/proj/src/clean.py": (DATA / "auth_service.py").read_text(encoding="utf-8"),
    }
    assert check(files, DEFAULT_GLOBS, root="/w/proj") == [
        Finding("/w/proj/.env", 0, "local_only", "matches local_only glob .env"),
        Finding("/w/proj/src/app.py", 2, "aws_access_key_id", "AWS access key id"),
    ]
    assert check(files, DEFAULT_GLOBS, scan=False) == [
        Finding("/w/proj/.env", 0, "local_only", "matches local_only glob .env"),
    ]
    assert check({"/w/proj/src/clean.py": files["/w/proj/src/clean.py"]}, DEFAULT_GLOBS) == []


def test_refuse_message_names_files_and_kinds() -> None:
    findings = [
        Finding("/w/proj/.env", 0, "local_only", "matches local_only glob .env"),
        Finding("src/app.py", 3, "aws_access_key_id", "AWS access key id"),
        Finding("src/app.py", 9, "github_token", "GitHub token"),
        Finding("src/app.py", 12, "github_token", "GitHub token"),
    ]
    message = refuse_message(findings)
    assert message == (
        "Kept on this machine, not sent to a cloud model: /w/proj/.env matches local_only glob "
        ".env; src/app.py holds an AWS access key id (line 4) and a GitHub token (lines 10, 13)."
    )


def test_refuse_message_is_one_sentence_for_many_files() -> None:
    findings = [Finding(f"file:///w/m%20{i}.py", i, "jwt", "JSON web token") for i in range(8)]
    message = refuse_message(findings)
    assert message.endswith("; and 3 more files.")
    assert "/w/m 0.py holds a JSON web token (line 1)" in message
    assert message.count(". ") == 0 and "\n" not in message


def test_refuse_message_without_findings() -> None:
    assert refuse_message([]) == ""


def test_ensure_shareable() -> None:
    ensure_shareable({"a.py": "print('hi')\n"}, DEFAULT_GLOBS)
    with pytest.raises(PrivacyError, match=r"a\.py holds a Slack token \(line 1\)") as info:
        ensure_shareable({"a.py": "SLACK = 'xoxb-" + "1234567890-" + chars(24) + "'\n"}, [])
    assert chars(24) not in str(info.value)
