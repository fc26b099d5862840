"""Property: `bundle run STUDY --dry-run` (the study loader, every sweep point, the
selection and each stage's preflight; nothing run) on random corruptions of a shipped
study exits 0, or 3 with one line naming the file and field; never a traceback, never
exit 4, never a file written (the run folder does not appear, the test's folder holds
only the study); memory bounded (tests.props: the command's address space may grow at
most 256 MiB over its size after a clean first run, enforced with RLIMIT_AS in the
child process of tests.bounded_cli).

Two kinds of corruption: bytes and lines (tests.props.corruptions: flips, cuts, YAML
nasties such as `.nan`, `1e400`, aliases, tags), and edits of the document tree (a key
deleted, a value replaced by one of the wrong type, a huge or non-finite number)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from runbook.config import shipped_dir
from tests.bounded_cli import BoundedCli
from tests.props import (
    LIMIT_MB,
    apply,
    assert_no_crash,
    assert_one_line_error,
    corruptions,
    frac,
    props_settings,
)

STUDIES = ["smoke-li2o", "llzo-gb"]  # llzo-gb: a sweep, plug-in stage kinds, by_profile
TOKENS = [b".nan", b".inf", b"-.inf", b"-1", b"0", b"1e400", b"123456789012345678901234567890",
          b"null", b"[]", b"{}", b"'x'", b"*a", b"&a", b"!!python/object/apply:os.system",
          b"[1, [2, [3]]]", b"true", b"0x10", b"~", b"<<:", b":", b"- x", b"\xff",
          b"{kind: x}", b"by_profile:", b"[.nan, .inf]"]  # fmt: skip
VALUES = [math.nan, math.inf, -math.inf, 10**30, -(10**30), 1e308, -1, 0, "x", "", None, True,
          [], {}, [[[]]], {"x": 1}, "a" * 5000, list(range(1000))]  # fmt: skip


def _paths(doc, prefix=()):
    """Every (path, value) of the document tree, depth first."""
    out = [(prefix, doc)]
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for k, v in items:
        out += _paths(v, (*prefix, k))
    return out


def edit_tree(doc: dict, edits: list[tuple]) -> dict:
    """`doc` with each edit applied: ("delete", where) removes a key or item, ("set",
    where, value) replaces a value; `where` picks a node by its position (0..1)."""
    for op in edits:
        nodes = [p for p, _ in _paths(doc) if p]
        if not nodes:
            break
        path = nodes[min(len(nodes) - 1, int(op[1] * len(nodes)))]
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if op[0] == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(op[2])  # never the shared VALUES object
    return doc


tree_edits = st.lists(
    st.one_of(
        st.tuples(st.just("delete"), frac),
        st.tuples(st.just("set"), frac, st.sampled_from(VALUES)),
    ),
    min_size=1,
    max_size=3,
)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("props-study")
    with BoundedCli(limit_mb=LIMIT_MB, timeout_s=60) as cli:
        for name in STUDIES:  # the valid studies pass (the first also warms the child)
            r = cli("run", shipped_dir() / f"{name}.yaml", "--run-dir", tmp / "run", "--dry-run")
            assert r["exit"] == 0 and r["exception"] is None, r
        assert not (tmp / "run").exists()
        yield cli, tmp


def _dry_run(cli, tmp: Path, data: bytes) -> None:
    study = tmp / "study.yaml"
    study.write_bytes(data)
    reply = cli("run", study, "--run-dir", tmp / "run", "--dry-run")
    assert_no_crash(reply, (0, 3))
    if reply["exit"] == 3:
        assert_one_line_error(reply)
        line = reply["stderr"].strip().splitlines()[-1]
        assert str(study) in line or "--" in line, line  # names the file (or the option)
    assert sorted(p.name for p in tmp.iterdir()) == ["study.yaml"], "a file was written"


@props_settings(40)
@given(name=st.sampled_from(STUDIES), ops=corruptions(TOKENS))
def test_corrupted_bytes_give_exit_0_or_one_line(work, name, ops):
    cli, tmp = work
    _dry_run(cli, tmp, apply((shipped_dir() / f"{name}.yaml").read_bytes(), ops))


@props_settings(40)
@given(name=st.sampled_from(STUDIES), edits=tree_edits)
def test_edited_fields_give_exit_0_or_one_line(work, name, edits):
    cli, tmp = work
    doc = yaml.safe_load((shipped_dir() / f"{name}.yaml").read_text())
    data = yaml.safe_dump(edit_tree(doc, edits), sort_keys=False, allow_unicode=True)
    _dry_run(cli, tmp, data.encode())
