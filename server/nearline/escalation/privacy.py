"""Content that must stay on this machine: files named by ``privacy.local_only`` globs, and text
that holds secrets (API keys, tokens, private keys, password-like assignments).

A ``Finding`` says where and what kind, never the secret itself. Lines are 0-based (as in LSP);
a whole-file finding (a local_only glob) has line 0.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from nearline.documents import path_of_uri
from nearline.errors import PrivacyError


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    """0-based line of the finding; 0 for a whole-file finding."""
    kind: str
    """``local_only``, or the secret's kind (``aws_access_key_id``, ``github_token``, ...)."""
    detail: str
    """What was found, for the user ('AWS access key id'); never the secret's value."""


# -- local_only globs --------------------------------------------------------------------------


def local_only_match(path: str, globs: Sequence[str], root: str | None = None) -> str | None:
    """The glob that keeps ``path`` (a path or ``file:`` URI) local, or None.

        Gitignore-like: a glob matches at any depth (``*.env`` any file ending ``.env``,
        ``secrets/**`` anything under a folder named ``secrets``, ``secrets`` a file or folder of
        that name), unless it starts with ``/``, which anchors it at ``root``. A glob that matches a
        folder covers everything under it; ``*`` stays within one path component, ``**`` spans any
        number; a trailing ``/`` means a folder. Paths are taken relative to ``root`` when they lie
        under it. Matching is case-sensitive. A later ``!glob`` takes a match back. Of several
    matching globs, the first is named."""
    parts = _relative_parts(path, root)
    if not parts:
        return None
    hit = None
    for glob in globs:
        pattern = glob.strip()
        negated = pattern.startswith("!")
        if negated:
            pattern = pattern[1:]
        if pattern and _glob_matches(pattern, parts):
            if negated:
                hit = None
            elif hit is None:
                hit = glob
    return hit


def _relative_parts(path: str, root: str | None) -> tuple[str, ...]:
    parts = _components(path)
    if root is not None:
        base = _components(root)
        if base and parts[: len(base)] == base:
            return parts[len(base) :]
    return parts


def _components(path: str) -> tuple[str, ...]:
    path = _file_path(path)
    return tuple(p for p in path.replace("\\", "/").split("/") if p not in ("", "."))


def _file_path(path: str) -> str:
    """A path, or a ``file:`` URI's path (``documents.path_of_uri``)."""
    found = path_of_uri(path) if path.startswith("file:") else None
    return found.as_posix() if found is not None else path


def _glob_matches(pattern: str, parts: tuple[str, ...]) -> bool:
    segments = [s for s in pattern.strip("/").split("/") if s not in ("", ".")]
    if not segments:
        return False
    if pattern.endswith("/"):
        segments.append("**")  # a folder: something inside it
    if not pattern.startswith("/"):
        segments.insert(0, "**")
    # The path itself, or a folder above it.
    return any(_match_segments(segments, parts[:k]) for k in range(1, len(parts) + 1))


def _match_segments(segments: Sequence[str], parts: Sequence[str]) -> bool:
    if not segments:
        return not parts
    head, rest = segments[0], segments[1:]
    if head == "**":
        if not rest:
            return len(parts) >= 1  # 'secrets/**' is what lies under secrets, not secrets
        return any(_match_segments(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match_segments(rest, parts[1:])


# -- secret scanning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretPattern:
    kind: str
    detail: str
    regex: re.Pattern[str]
    accept: Callable[[str], bool] = lambda value: True
    """A second look at the matched text, to keep look-alikes out."""
    not_after: str | None = "_"
    """Characters (besides letters and digits) that may not come right before a match; None
    for no check. Checked here rather than by a lookbehind, which would make the regex slow."""


def _has_digit_and_letter(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _mixed_case_and_digit(value: str) -> bool:
    return _has_digit_and_letter(value) and value != value.lower() and value != value.upper()


# Each regex starts with a literal, which keeps a scan of a big file fast.
SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern(
        "aws_access_key_id",
        "AWS access key id",
        re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ),
    SecretPattern(
        "aws_secret_access_key",
        "AWS secret access key",
        re.compile(
            r"(?:secret_?access_?key|Secret_?Access_?Key|SECRET_?ACCESS_?KEY|secretAccessKey)"
            r"[\"']?\s*(?::=|=>|=|:)\s*[\"']?"
            r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
        _has_digit_and_letter,
        not_after=None,  # aws_secret_access_key
    ),
    SecretPattern(
        "private_key",
        "private key block",
        # The marker, optional headers (Proc-Type, DEK-Info), then key data; real or '\n'
        # escaped line ends (a key inside JSON). A marker alone, as in a PEM parser, is not one.
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:\\[rn]|\s)+(?:[A-Za-z-]+: [^\n\\]*(?:\\[rn]|\s)+)*[A-Za-z0-9+/=]{16,}"
        ),
        not_after=None,
    ),
    SecretPattern(
        "github_token",
        "GitHub token",
        re.compile(
            r"g(?:h[pousr]_[A-Za-z0-9]{36,251}|ithub_pat_[A-Za-z0-9_]{40,})(?![A-Za-z0-9_])"
        ),
        _has_digit_and_letter,
    ),
    SecretPattern(
        "slack_token",
        "Slack token",
        re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"),
        _has_digit_and_letter,
    ),
    SecretPattern(
        "anthropic_key",
        "Anthropic API key",
        re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}"),
        _mixed_case_and_digit,
        "_-",
    ),
    SecretPattern(
        "openai_key",
        "OpenAI API key",
        re.compile(r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"),
        _mixed_case_and_digit,
        "_-",
    ),
    SecretPattern(
        "google_api_key",
        "Google API key",
        re.compile(r"AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),
        not_after="_-",
    ),
    SecretPattern(
        "stripe_live_key",
        "Stripe live key",
        re.compile(r"(?:sk_live_|rk_live_)[0-9A-Za-z]{16,}"),
        _has_digit_and_letter,
    ),
    SecretPattern(
        "jwt",
        "JSON web token",
        re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{16,}"),
        not_after="_-",
    ),
)

# Generic assignments: a secret-sounding name given a random-looking literal. A line is looked
# at closely only when it holds such a word assigned 12 or more characters, which keeps a big
# file fast. (Looser than the close look: it must not miss what that would find.)
NAME_HINT = re.compile(r"pass|pwd|secret|token|key|credential")
NAME_HINT_ANY_CASE = re.compile(NAME_HINT.pattern, re.I)
# '(?=(?P<x>...))(?P=x)' is an atomic group: no backtracking into it, which would be slow.
HINT_TAIL = re.compile(
    r"""(?=(?P<rest>[\w.$@-]*))(?P=rest)["'`]?\]?[ \t]*
        (?::(?=(?P<annotation>[^=\n]{0,60}))(?P=annotation)(?==))?
        (?::=|=>|=|:)[ \t]*[bBrRuU]{0,2}["'`]?[^\s"'`]{12}""",
    re.X,
)
# A quoted literal long enough to be a secret. What must come right before it: a name, maybe
# a key's closing quote or bracket, a type annotation, an assignment operator.
QUOTED = re.compile(r"""(["'`])([^"'`\s]{12,1000})\1""")
# Matched against the text before the literal, reversed: one anchored match instead of a
# search that would try every start.
NAME_BEFORE_REVERSED = re.compile(
    r"""[bBrRuU]{0,2}\s*(?:=:|>=|=|:)                  # the operator: := => = :
        (?:\s*[\w\[\]., |]*?[A-Za-z_]\s*:)?           # a type annotation (': list[str]')
        \s*\]?["']?                                    # a key's closing quote or bracket
        (?P<name>[\w.$@-]*[A-Za-z_$@])(?![\w.$@-])""",
    re.X,
)
# A whole line 'NAME=value' or 'name: value' with a bare value (.env, YAML, INI).
BARE_ASSIGNMENT = re.compile(
    r"""[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][\w.-]*)[ \t]*[:=][ \t]*
        (?P<value>[^\s"'`]+)(?:[ \t]+\#.*)?[ \t]*\r?$""",
    re.X,
)
SECRET_WORDS = {"password", "passwd", "pass", "pwd", "passphrase", "secret", "token", "apikey"}
SECRET_WORDS |= {"credential", "credentials"}
SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")}
SECRET_PAIRS |= {("auth", "key"), ("signing", "key"), ("encryption", "key"), ("master", "key")}
# A name ending in one of these is about a secret, not one (token_url, private_key_path).
NOT_SECRET_HEADS = {"id", "type", "kind", "name", "label", "url", "uri", "endpoint", "path", "file"}
NOT_SECRET_HEADS |= {"dir", "env", "var", "field", "header", "prefix", "suffix", "pattern", "regex"}
NOT_SECRET_HEADS |= {"format", "length", "len", "count", "hash", "digest", "checksum", "mode"}
# Placeholders, templates, regexes, paths and URLs (matched against the lowercased value).
NOT_A_SECRET = re.compile(
    r"example|sample|dummy|placeholder|chang(?:e_?)?me|your|xxxx|test|fake|redacted|secret"
    r"|password|token|here|todo|\*\*\*|\.\.\.|[\[\]{}()<>\\]|://|\$\{|^\.{0,2}/|^~/"
)
CHAR_CLASSES = tuple(
    frozenset(c) for c in (string.ascii_lowercase, string.ascii_uppercase, "0123456789")
)
ALNUM = frozenset(string.ascii_letters + string.digits)
MIN_GENERIC_LENGTH = 12
MIN_GENERIC_ENTROPY = 3.0
"""Bits per character; 12 random base62 characters have about 3.4, words and names less."""
MIN_HEX_ENTROPY = 2.5
"""Hex digits carry at most 4 bits; 16 random ones have about 3.2."""
HEX = frozenset("0123456789abcdefABCDEF")


def scan_secrets(text: str, path: str = "") -> list[Finding]:
    """Secrets in ``text``, in document order: the known token formats, then password-like
    assignments of random-looking literals on lines with no other finding."""
    findings: list[Finding] = []
    flagged: set[int] = set()
    for pattern in SECRET_PATTERNS:
        line, counted_to = 0, 0
        for m in pattern.regex.finditer(text):
            if _starts_token(text, m.start(), pattern.not_after) and pattern.accept(m.group()):
                line += text.count("\n", counted_to, m.start())
                counted_to = m.start()
                findings.append(Finding(path, line, pattern.kind, pattern.detail))
                flagged.add(line)
    for line, start, end in _hinted_lines(text):
        name = None if line in flagged else _assigned_secret(text, start, end)
        if name is not None:
            detail = f"secret-looking value assigned to {name[:40]}"
            findings.append(Finding(path, line, "generic_secret", detail))
    findings.sort(key=lambda f: f.line)
    return _unique(findings)


def _starts_token(text: str, at: int, not_after: str | None) -> bool:
    if not_after is None or at == 0:
        return True
    before = text[at - 1]
    return not (before.isalnum() or before in not_after)


def _hinted_lines(text: str) -> list[tuple[int, int, int]]:
    """(line number, start, end) of each line where a NAME_HINT word is assigned a long value."""
    low = text.lower()
    # A case-sensitive search of the lowercased text is much faster than (?i); a few
    # characters ('İ') lowercase to two, which would shift the offsets.
    hits = NAME_HINT.finditer(low) if len(low) == len(text) else NAME_HINT_ANY_CASE.finditer(text)
    lines = []
    line, counted_to, end = 0, 0, -1
    for m in hits:
        if m.start() <= end or not HINT_TAIL.match(text, m.end()):
            continue  # on the line already taken, or not assigned a long value
        start = text.rfind("\n", 0, m.start()) + 1
        line += text.count("\n", counted_to, start)
        counted_to = start
        end = text.find("\n", m.end())
        end = len(text) if end < 0 else end
        lines.append((line, start, end))
    return lines


def _assigned_secret(text: str, start: int, end: int) -> str | None:
    """The name on this line that is assigned a random-looking literal, if any."""
    m = BARE_ASSIGNMENT.match(text, start, end)
    if m and _secret_name(m.group("name")) and _looks_random(m.group("value")):
        return m.group("name")
    for q in QUOTED.finditer(text, start, end):
        if not _looks_random(q.group(2)):
            continue
        before = NAME_BEFORE_REVERSED.match(text[max(start, q.start() - 120) : q.start()][::-1])
        if before:
            name = before.group("name")[::-1]
            if _secret_name(name):
                return name
    return None


@lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    words = [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]
    if not words or "public" in words or words[-1] in NOT_SECRET_HEADS:
        return False  # publicKeyToken, token_type, password_hash, secret_name
    return any(w in SECRET_WORDS for w in words) or any(
        pair in SECRET_PAIRS for pair in zip(words, words[1:], strict=False)
    )


def _looks_random(value: str) -> bool:
    """A literal that looks like a real secret: long, varied, not words, not a placeholder,
    a template, a path or a URL."""
    if not MIN_GENERIC_LENGTH <= len(value) <= 1000 or NOT_A_SECRET.search(value.lower()):
        return False
    chars = set(value)
    classes = sum(not chars.isdisjoint(c) for c in CHAR_CLASSES) + (not chars <= ALNUM)
    least = MIN_HEX_ENTROPY if chars <= HEX else MIN_GENERIC_ENTROPY
    return classes >= 2 and _wordiness(value) < 0.5 and entropy(value) >= least


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    if not n:
        return 0.0
    return math.log2(n) - sum(k * math.log2(k) for k in Counter(value).values()) / n


def _wordiness(value: str) -> float:
    """The share of characters in word-like runs: three or more lowercase letters, maybe
    capitalised (``key``, ``Path``), or four or more capitals (``JSON``)."""
    runs = re.findall(r"[A-Z]?[a-z]{3,}|[A-Z]{4,}", value)
    return sum(len(r) for r in runs) / len(value)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[Finding] = set()
    out = []
    for f in findings:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out


# -- the verdict -------------------------------------------------------------------------------


def check(
    files: Mapping[str, str],
    globs: Sequence[str],
    scan: bool = True,
    root: str | None = None,
) -> list[Finding]:
    """Every finding for ``files`` (path or URI → text). A file a glob keeps local gets that one
    finding; its text is not scanned."""
    findings: list[Finding] = []
    for path, text in files.items():
        glob = local_only_match(path, globs, root)
        if glob is not None:
            findings.append(Finding(path, 0, "local_only", f"matches local_only glob {glob}"))
        elif scan:
            findings.extend(scan_secrets(text, path))
    return findings


def refuse_message(findings: Sequence[Finding], max_files: int = 5) -> str:
    """One sentence naming the files and what was found in them (never the values); "" if
    there are no findings."""
    by_path: dict[str, dict[str, list[int]]] = {}
    for f in findings:
        lines = by_path.setdefault(f.path, {}).setdefault(f.detail, [])
        if f.kind != "local_only" and f.line + 1 not in lines:
            lines.append(f.line + 1)
    if not by_path:
        return ""
    clauses = []
    for path, details in list(by_path.items())[:max_files]:
        name = _display(path)
        globs = [d for d in details if d.startswith("matches local_only glob")]
        if globs:
            clauses.append(f"{name} {globs[0]}")
            continue
        found = [f"{_article(d)} {d}{_lines_note(lines)}" for d, lines in details.items()]
        clauses.append(f"{name} holds {_join(found)}")
    more = len(by_path) - max_files
    if more > 0:
        clauses.append(f"and {more} more file{'s' if more > 1 else ''}")
    return f"Kept on this machine, not sent to a cloud model: {'; '.join(clauses)}."


def ensure_shareable(
    files: Mapping[str, str],
    globs: Sequence[str],
    scan: bool = True,
    root: str | None = None,
) -> None:
    """``PrivacyError`` with ``refuse_message`` if any of ``files`` must stay local."""
    findings = check(files, globs, scan, root)
    if findings:
        raise PrivacyError(refuse_message(findings))


def _display(path: str) -> str:
    return _file_path(path) or "the text"


def _article(detail: str) -> str:
    return "an" if detail[:1].lower() in "aeio" else "a"


def _lines_note(lines: list[int]) -> str:
    if not lines:
        return ""
    shown = ", ".join(str(n) for n in lines[:3]) + (", ..." if len(lines) > 3 else "")
    return f" (line{'s' if len(lines) > 1 else ''} {shown})"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
