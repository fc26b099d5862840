"""The install prefix: what `bundle install` owns there, and what it never touches.

Owned: the files an install wrote, listed in the install record (`files`), plus the files
a pending install may have written (`install.json.pending`, removed when it completes).
For a record written before that list existed, the files of the prefix's MANIFEST.json
and the files install makes (MADE) are owned. Site data that bundle commands write
later (SITE_DIRS) and the venv are never foreign and never walked.

Everything else is foreign. An install into a prefix holding foreign files is refused
unless `force`; even then a foreign file (or link, or folder) at a path the bundle
installs is refused, so nothing foreign is ever overwritten or removed. The foreign
paths an install was forced beside are recorded (`kept`), so a re-install does not need
--force again for them (it does for new ones). Files of an earlier install that the new
bundle no longer ships are removed: they are owned.

Downgrades: a bundle older than the installed one (bundle version, then the manifest's
creation time) is refused unless `allow_downgrade`; the record keeps every earlier
install in `history`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bundle import manifest as mf
from bundle.core.errors import InputError

RECORD = "install.json"
PENDING = "install.json.pending"
MADE = ("bin/bundle", "keys/site.key", "keys/site.pub")  # written by install itself
SITE_DIRS = ("reports", "runs", "site", "venv")  # made by bundle commands; never walked
STAGING_PREFIX = ".staging"
SHOWN = 3  # foreign paths named in a message


@dataclass(frozen=True)
class Plan:
    """What an install will write, and what it may remove, decided before any write."""

    write: tuple[str, ...]  # relative paths of every file this install writes
    remove: tuple[str, ...]  # owned files of the earlier install the new one does not ship
    foreign: tuple[str, ...]  # foreign paths left untouched (only with force)


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(path, "(syntax)", f"not JSON: {e}", "re-run install") from None
    return doc if isinstance(doc, dict) else None


def owned(prefix: Path, record: dict | None) -> set[str]:
    """Relative paths that an earlier install wrote (see the module doc)."""
    files: set[str] = set((_read_json(prefix / PENDING) or {}).get("files", []))
    if record is None:
        return files
    files |= {str(i["sif"]) for i in record.get("images", []) if isinstance(i, dict) and "sif" in i}
    if isinstance(record.get("files"), dict):
        return files | set(record["files"])
    man = prefix / mf.MANIFEST  # a record from before `files`: its manifest says
    if man.is_file():
        files |= {f.path for f in mf.Manifest.from_json(man.read_bytes(), man).files}
    return files | set(MADE) | {RECORD, *mf.RESERVED}


def _present(prefix: Path) -> list[str]:
    """Every file, link and special file under `prefix`, except site data and staging."""
    out = []
    for dirpath, dirnames, filenames in os.walk(prefix):
        here = Path(dirpath)
        top = here == prefix
        for d in list(dirnames):
            skip = top and (d in SITE_DIRS or d.startswith(STAGING_PREFIX))
            if skip or (here / d).is_symlink():
                dirnames.remove(d)
                if not skip:
                    out.append((here / d).relative_to(prefix).as_posix())
        out += [(here / f).relative_to(prefix).as_posix() for f in filenames]
    return sorted(out)


def _blocked(prefix: Path, rel: str) -> str | None:
    """Why `rel` cannot be written under `prefix` (a file or link on its way), or None."""
    p = prefix
    for part in PurePosixPath(rel).parts[:-1]:
        p = p / part
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            return f"{p.relative_to(prefix)} is a {'link' if p.is_symlink() else 'file'}"
    dest = prefix / rel
    if dest.is_dir() and not dest.is_symlink():
        return f"{rel} is a folder"
    return None


def plan(prefix: Path, files: list[str], record: dict | None, force: bool) -> Plan:
    """Decide, before writing anything, what an install of `files` does under `prefix`."""
    mine = owned(prefix, record)
    write = sorted({*files, *MADE, RECORD, *mf.RESERVED})
    present = set(_present(prefix)) if prefix.is_dir() else set()
    foreign = sorted(present - mine - {PENDING})
    clash = [p for p in write if p in foreign or _blocked(prefix, p)]
    if clash:
        why = _blocked(prefix, clash[0]) or f"{clash[0]} was not written by bundle install"
        raise InputError(
            prefix,
            "--prefix",
            f"installing would overwrite what bundle install did not write: {why}"
            + (f" (+{len(clash) - 1} more)" if len(clash) > 1 else ""),
            "move those paths away (or install into another prefix); --force never overwrites",
        )
    new = [p for p in foreign if p not in set((record or {}).get("kept", []))]
    if new and not force:
        shown = ", ".join(new[:SHOWN]) + (" ..." if len(new) > SHOWN else "")
        raise InputError(
            prefix,
            "--prefix",
            f"holds {len(new)} path(s) bundle install did not write ({shown})",
            "install into a new or empty folder, or pass --force to install beside them "
            "(they are kept)",
        )
    keep = set(write) | {"keys/site.key", "keys/site.pub"}
    remove = sorted(p for p in mine - keep if p not in foreign and (prefix / p).is_file())
    return Plan(tuple(write), tuple(remove), tuple(foreign))


def version_key(version: str, created_utc: str) -> tuple:
    """Order of bundles: the version's numbers, then the manifest's creation time."""
    return tuple(int(x) for x in re.findall(r"\d+", version.split("+")[0])), created_utc


def check_downgrade(record: dict | None, man: mf.Manifest, allow: bool, prefix: Path) -> None:
    if record is None or allow:
        return
    have = (str(record.get("bundle_version", "")), str(record.get("manifest_created_utc", "")))
    if not have[1]:
        old = prefix / mf.MANIFEST
        if old.is_file():
            have = (have[0], mf.Manifest.from_json(old.read_bytes(), old).created_utc)
    if version_key(man.bundle_version, man.created_utc) < version_key(*have):
        raise InputError(
            prefix,
            "bundle version",
            f"the bundle ({man.bundle_version}, packed {man.created_utc}) is older than the "
            f"installed one ({have[0]}, packed {have[1]})",
            "install the newer bundle, or pass --allow-downgrade to go back on purpose",
        )


def history(record: dict | None) -> list[dict]:
    """The record's history plus the record itself, as one entry per earlier install."""
    if record is None:
        return []
    keys = ("bundle_version", "flavor", "manifest_sha256", "manifest_created_utc")
    keys += ("signer_fingerprint", "installed_utc")
    entry = {k: record.get(k) for k in keys}
    return [*record.get("history", []), entry]


def write_pending(prefix: Path, files: list[str], mine: set[str]) -> None:
    """Before the first write: every path this install may leave behind if it is killed."""
    path = prefix / PENDING
    path.write_text(json.dumps({"files": sorted(set(files) | mine)}, indent=1) + "\n")


def finish(prefix: Path, p: Plan) -> None:
    """After the new files are in: remove the owned files the new bundle no longer ships
    (and folders they leave empty), then the pending list."""
    for rel in p.remove:
        (prefix / rel).unlink(missing_ok=True)
        parent = (prefix / rel).parent
        while parent != prefix and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    (prefix / PENDING).unlink(missing_ok=True)
