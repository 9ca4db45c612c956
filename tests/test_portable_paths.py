"""No committed file holds an absolute path of the machine that wrote it, and the code records
paths the way a committed file may hold them (``rbfi.io.paths``, ``zoo.recorded_ref``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from rbfi.io.paths import portable_command, portable_path
from rbfi.models import zoo

ROOT = Path(__file__).resolve().parents[1]


# --- the recording functions ---------------------------------------------------------------------


def test_paths_inside_the_base_become_relative_others_stay_as_given(tmp_path):
    base = tmp_path / "repo"
    (base / "runs" / "a").mkdir(parents=True)
    assert portable_path(base / "runs" / "a", base) == "runs/a"
    assert portable_path(f"{base}/runs/../runs/a", base) == "runs/a"  # resolved when needed
    assert portable_path(base, base) == "."
    assert portable_path("runs/a", base) == "runs/a"  # relative: as given
    assert portable_path("zoo:cert512", base) == "zoo:cert512"
    outside = tmp_path / "elsewhere" / "b"
    assert portable_path(outside, base) == str(outside)  # nothing portable to say instead
    assert portable_path(f"{base}x/c", base) == f"{base}x/c"  # a sibling sharing a prefix


def test_commands_record_their_paths_relative(tmp_path):
    argv = ["train", "--out", str(tmp_path / "runs" / "a b"), f"--init-from={tmp_path}/r", "-q"]
    assert portable_command(argv, tmp_path) == "train --out 'runs/a b' --init-from=r -q"


def test_checkpoint_references_are_recorded_as_zoo_names_or_relative_paths(tmp_path, monkeypatch):
    folder = tmp_path / "zoo"
    (folder / "net").mkdir(parents=True)
    (folder / "net" / zoo.CARD_NAME).write_text("{}")
    (folder / "nocard").mkdir()
    monkeypatch.setenv(zoo.ZOO_ENV, str(folder))
    monkeypatch.chdir(tmp_path)
    assert zoo.recorded_ref("zoo:net") == "zoo:net"
    assert zoo.recorded_ref(folder / "net") == "zoo:net"
    assert zoo.recorded_ref("zoo/net") == "zoo:net"
    assert zoo.recorded_ref(folder / "nocard") == "zoo/nocard"  # not a net of the zoo
    assert zoo.recorded_ref(tmp_path / "runs" / "x") == "runs/x"


# --- the committed files -------------------------------------------------------------------------


def forbidden_prefixes(root: Path) -> list[str]:
    """Absolute paths no committed file may name: the checkout (as given and resolved) and the
    folder holding it, the home folder, and temporary folders (this machine's and the usual
    ones). Written without their literal text, so that this file does not match itself."""
    sep = os.sep
    tmp = [sep.join(["", "tmp", ""]), sep.join(["", "var", "folders", ""])]
    tmp += [sep.join(["", "private", "var", "folders", ""]), tempfile.gettempdir() + sep]
    places = {root, root.resolve(), root.parent, root.resolve().parent, Path.home()}
    prefixes = {str(p) + sep for p in places if len(p.parts) > 1}
    prefixes |= {str(root), str(root.resolve())}  # the checkout itself, e.g. "cd ROOT"
    return sorted(prefixes | set(tmp), key=len, reverse=True)


def machine_paths(text: str, prefixes: list[str]) -> list[str]:
    """The occurrences of ``prefixes`` in ``text`` that begin a path (not inside a longer name
    or a URL) and, for a prefix without a trailing separator, end
    one."""
    alternatives = [
        re.escape(p) + ("" if p.endswith(os.sep) else r"(?![\w.-])") for p in prefixes
    ]  # longest first: each occurrence is reported once, with its longest prefix
    return re.findall(r"(?<![\w.~/-])(?:" + "|".join(alternatives) + r")[^\s\"'`)]*", text)


def test_machine_paths_are_recognised_and_names_that_merely_contain_them_are_not():
    root = Path(os.sep.join(["", "srv", "me", "rbfi"]))
    prefixes = forbidden_prefixes(root)
    tmp_file = os.sep.join(["", "tmp", "x.json"])
    assert machine_paths(f"--out {root}/runs/a", prefixes) == [f"{root}/runs/a"]
    assert machine_paths(f'"run": "{root}"', prefixes) == [str(root)]
    assert machine_paths(f"sibling {root.parent}/runs/b", prefixes) == [f"{root.parent}/runs/b"]
    assert machine_paths(f"see {tmp_file}", prefixes) == [tmp_file]
    assert machine_paths(f"{root}2/a", prefixes) == [f"{root}2/a"]  # a sibling of the checkout
    assert (
        machine_paths(f"{root.parent}adow/a https://x.org{tmp_file} runs{tmp_file}", prefixes) == []
    )


def test_no_tracked_text_file_names_an_absolute_path_of_this_machine():
    """`git grep` over the tracked (and new, not ignored) text files for the checkout's absolute
    path, the folder holding it, the home folder and temporary folders."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an sdist or a copy): no tracked files to check")
    prefixes = forbidden_prefixes(ROOT)
    command = ["git", "grep", "--untracked", "-lIF", *[a for p in prefixes for a in ("-e", p)]]
    listed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert listed.returncode in (0, 1), listed.stderr  # 1: no file matched
    offenders = {}
    for name in listed.stdout.splitlines():
        hits = machine_paths((ROOT / name).read_text(errors="replace"), prefixes)
        if hits:
            offenders[name] = hits[:3]
    assert not offenders, f"absolute machine paths in committed files: {offenders}"
