"""Redaction of what a site produced before it leaves the site (the proofpack).

What is replaced, in values only:
- absolute paths of the home folder, the install prefix or checkout, the venv, the working
  folder -> `<home>`, `<prefix>`, `<checkout>`, ... : a path matches only as a whole path
  or a parent (`/home/alice/x`), never as the start of a longer name (`/home/alice2`);
- IPv4 addresses (any) and this machine's own addresses (v4 and v6) -> `<ip>`;
- host names (short and FQDN) and user names -> `<host>`, `<user>`, as whole words: a
  word is a run of letters, digits and `_`, so `gpu1` never touches `gpu10` but
  `pytest-of-alice` loses `alice`.

JSON is redacted by structure: keys are kept (a user called `root` leaves the key
`"root"` alone; paths and addresses in keys are still replaced), string values are
redacted. A name that is also a word of the product's vocabulary (a profile such as
`h200`, a folder such as `bundle` or `references`) is replaced only where it stands as a
host or user: the whole value of a host/user field, or next to `@` (`alice@gpu1`).
So `"profile": "h200"` and `bundle/references/...` survive a host called `h200` and a
user called `bundle`. Text that is not JSON is redacted as one string value.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import pwd
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

HOST_KEYS = frozenset(
    {"host", "hostname", "host_name", "node", "nodename", "fqdn", "user", "username", "login"}
)
WORD = r"A-Za-z0-9_"
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
MIN_NAME = 2


def _machine_names() -> tuple[set[str], set[str], set[str]]:
    """(host names, user names, own IP addresses) of this machine."""
    hosts = {socket.gethostname(), socket.getfqdn(), os.uname().nodename}
    hosts |= {h.split(".")[0] for h in hosts}
    users = {os.environ.get("USER", ""), os.environ.get("SUDO_USER", ""), getpass.getuser()}
    try:
        users.add(pwd.getpwuid(os.getuid()).pw_name)
    except KeyError:
        pass
    ips: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            ips.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    hosts -= {"localhost", "localhost.localdomain"}
    return hosts, users, ips


@dataclass(frozen=True)
class Redactor:
    paths: tuple[tuple[str, str], ...] = ()  # absolute path -> marker
    names: tuple[tuple[str, str], ...] = ()  # host or user name -> marker
    vocabulary: frozenset[str] = frozenset()  # words of the product (see module doc)
    ips: tuple[str, ...] = ()  # this machine's addresses (IPv4 ones are caught anyway)
    enabled: bool = True

    @classmethod
    def for_this_machine(
        cls,
        enabled: bool = True,
        paths: Mapping[str, object] | None = None,
        vocabulary: Iterable[str] = (),
    ) -> Redactor:
        """Names and addresses of this machine; `paths`: {marker: absolute path}, the
        home folder added as `<home>`."""
        if not enabled:
            return cls(enabled=False)
        hosts, users, ips = _machine_names()
        names = {(h, "<host>") for h in hosts if len(h) >= MIN_NAME}
        names |= {(u, "<user>") for u in users if len(u) >= MIN_NAME}
        found = {"<home>": os.path.expanduser("~"), **(paths or {})}
        pairs = {(os.path.normpath(str(p)), m) for m, p in found.items() if p}
        pairs = {(p, m) for p, m in pairs if p.startswith("/") and p != "/"}
        return cls(
            tuple(sorted(pairs, key=lambda x: -len(x[0]))),
            tuple(sorted(names, key=lambda x: -len(x[0]))),
            frozenset(vocabulary),
            tuple(sorted(ips - {"127.0.0.1", "::1"})),
        )

    # ---------------------------------------------------------------- strings
    def _paths_and_ips(self, s: str) -> str:
        for path, mark in self.paths:
            s = re.sub(_path_re(path), mark, s)
        for ip in self.ips:
            s = re.sub(rf"(?<![\w.:]){re.escape(ip)}(?![\w:]|\.\d)", "<ip>", s)
        return IPV4.sub(lambda m: "<ip>" if _is_ip(m.group()) else m.group(), s)

    def _names(self, s: str) -> str:
        for name, mark in self.names:
            pattern = rf"(?<![{WORD}]){re.escape(name)}(?![{WORD}])"
            if name.lower() in self.vocabulary:
                s = re.sub(pattern, lambda m, k=mark: k if _by_at(m) else m.group(), s)
            else:
                s = re.sub(pattern, mark, s)
        return s

    def value(self, s: str, key: object = None) -> str:
        """One string value; `key` is the name of the field holding it, if any."""
        if not self.enabled:
            return s
        if isinstance(key, str) and key.lower() in HOST_KEYS:
            for name, mark in self.names:
                if s.strip() == name:
                    return mark
        return self._names(self._paths_and_ips(s))

    def key(self, k: str) -> str:
        return self._paths_and_ips(k) if self.enabled else k

    def json(self, obj: Any, key: object = None) -> Any:
        """A JSON-like structure with its values redacted and its keys kept (see above)."""
        if isinstance(obj, dict):
            return {
                self.key(k) if isinstance(k, str) else k: self.json(v, k) for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self.json(v, key) for v in obj]
        return self.value(obj, key) if isinstance(obj, str) else obj

    def document(self, text: str) -> str:
        """A file's text: JSON by structure (re-serialised), anything else as one value."""
        if not self.enabled:
            return text
        if text.lstrip()[:1] in ("{", "["):
            try:
                doc = json.loads(text)
            except ValueError:
                pass
            else:
                end = "\n" if text.endswith("\n") else ""
                return json.dumps(self.json(doc), indent=1, ensure_ascii=False) + end
        return self.value(text)

    __call__ = document

    def leaks(self, text: str) -> list[str]:
        """Secrets left in the redacted `text` (JSON: in its values, and paths in keys):
        paths, and names that stand as whole words (a product word only by an `@`)."""
        out = self.document(text)
        try:
            strings = list(_strings(json.loads(out)))
        except ValueError:
            strings = [out]
        found = set()
        for s in strings:
            found |= {p for p, _ in self.paths if re.search(_path_re(p), s)}
            for n, _ in self.names:
                for m in re.finditer(rf"(?<![{WORD}]){re.escape(n)}(?![{WORD}])", s):
                    if n.lower() not in self.vocabulary or _by_at(m):
                        found.add(n)
        return sorted(found)


def _strings(obj: Any):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v)
            if isinstance(k, str) and k.startswith("/"):
                yield k
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def _path_re(path: str) -> str:
    """A path as a whole path or a parent, never the start of a longer name."""
    return rf"(?<![\w.~/-]){re.escape(path)}(?![\w-]|\.\w)"


def product_words(root: Path, extra: Iterable[str] = (), manifest_paths: Iterable[str] = ()):
    """The product's own words: `extra` (profiles, flavors), the names of the folders and
    files at the top of `root` and one level down, and every part of the shipped paths."""
    words = {w.lower() for w in extra}
    for p in [root, *(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))]:
        words |= {c.name.lower() for c in p.iterdir() if not c.name.startswith(".")}
    for rel in manifest_paths:
        words |= {part.lower() for part in PurePosixPath(rel).parts}
    return frozenset(w for w in words if len(w) >= MIN_NAME)


def _is_ip(s: str) -> bool:
    try:
        ipaddress.IPv4Address(s)
    except ValueError:
        return False
    return True


def _by_at(m: re.Match) -> bool:
    """A name written as user@host: the `@` right before or after it."""
    s, a, b = m.string, m.start(), m.end()
    return (a > 0 and s[a - 1] == "@") or (b < len(s) and s[b] == "@")
