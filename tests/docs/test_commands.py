"""Docs that cannot go stale: every command README.md and docs/ show exists with each flag it uses (asked of the
command's own ``--help``), the cheap ones run as written, and every file of the project the docs name exists."""

import functools
import os
import re
import subprocess
import sys
from typing import List, Optional, Tuple

import pytest
from doc_commands import REPO, commands, documents

PLACEHOLDER = re.compile(r"^(\.\.\.|[A-Z][A-Z_]*(\.\.\.)?|\[?[A-Z_]+\]?|COMMAND)$")
MODULES = ("pipeline.local_runner", "pipeline.kubeflow_runner", "pipeline.engines.cluster")
SUBCOMMANDS = {"pipeline.local_runner": ("status", "rollback"), "pipeline.kubeflow_runner": ("compile", "submit",
                                                                                            "schedule"),
               "pipeline.engines.cluster": ("fetch", "up", "down", "status")}
CHEAP = (["tfdet", "--help"], ["tfdet", "models"], ["tfdet", "weights", "list"])


@functools.cache
def help_text(*command: str) -> str:
    """``command --help``'s text, as the user would see it (run from the repository root)."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    done = subprocess.run([*command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, (command, done.stderr[-2000:])
    return done.stdout


def flags(words: List[str]) -> List[str]:
    found = []
    for word in words:
        for flag in re.findall(r"(?:^|[\[|])(--[a-z][\w-]*)", word):
            found.append(flag)
    return found


def targets() -> Tuple[set, set]:
    makefile = open(os.path.join(REPO, "Makefile")).read()
    names = set(re.findall(r"^([\w-]+):", makefile, re.M))
    benches = set(re.search(r"^BENCHMARKS = (.*)$", makefile, re.M).group(1).split())
    return names, benches


def command_of(words: List[str]) -> Optional[Tuple[List[str], List[str]]]:
    """(the command whose --help knows the flags, the words after it); None for what is not one of ours."""
    program = words[0].replace(".venv/bin/", "")
    if program == "tfdet":
        rest = words[1:]
        if not rest or rest[0].startswith("-") or PLACEHOLDER.match(rest[0]):
            return [sys.executable, "-m", "tfdet.cli"], rest
        head = [sys.executable, "-m", "tfdet.cli", rest[0]]
        if rest[0] in ("convert", "weights") and len(rest) > 1 and not rest[1].startswith("-") \
                and rest[1] != "...":
            return head + [rest[1]], rest[2:]
        return head, rest[1:]
    if program == "python" and words[1:2] == ["-m"]:
        module, rest = words[2], words[3:]
        assert module in MODULES or module == "tfdet.cli", f"python -m {module}: not one of the project's commands"
        if rest and rest[0] in SUBCOMMANDS.get(module, ()):
            return [sys.executable, "-m", module, rest[0]], rest[1:]
        return [sys.executable, "-m", module], rest
    if program == "python":
        script = re.sub(r"^/tfdet/", "", words[1])  # the pipeline image's copy of the repository
        assert os.path.exists(os.path.join(REPO, script)), f"{words[1]} does not exist"
        rest = words[2:]
        if rest and not rest[0].startswith("-") and not PLACEHOLDER.match(rest[0]):
            return [sys.executable, os.path.join(REPO, script), rest[0]], rest[1:]
        return [sys.executable, os.path.join(REPO, script)], rest
    return None


def alternatives(words: List[str]) -> List[List[str]]:
    """``tfdet convert coco|voc ...`` -> one command per alternative of the first word that has some."""
    for i, word in enumerate(words[:3]):
        if "|" in word and not word.startswith("-"):
            return [words[:i] + [choice] + words[i + 1:] for choice in word.split("|") if choice]
    return [words]


SHOWN = sorted({(doc, line, tuple(words)) for doc, line, words in commands()}, key=lambda found: found[:2])


def test_the_docs_show_commands():
    assert len(SHOWN) > 60  # the extraction works; the tests below are not vacuous


@pytest.mark.parametrize("doc, line, words", SHOWN, ids=[f"{d}:{n}" for d, n, _ in SHOWN])
def test_each_command_and_flag_the_docs_show_exists(doc, line, words):
    words = list(words)
    if words[0] == "make":
        names, benches = targets()
        for target in (w for w in words[1:] if "=" not in w and not w.startswith("-")):
            if target.startswith("bench-") and target != "bench-*":
                assert target[len("bench-"):] in benches, f"{doc}:{line}: no benchmark {target}"
            elif target != "bench-*":
                assert target in names, f"{doc}:{line}: the Makefile has no target {target}"
        return
    if words[0] == "tfdet" and words[1:2] == ["train", "|"]:
        words = ["tfdet", "|".join(w for w in words[1:] if w != "|")]  # "tfdet train | predict | ..."
    for one in alternatives(words):
        found = command_of(one)
        if found is None:
            continue
        command, rest = found
        if len(command) > 3 and command[2] == "tfdet.cli":
            known = help_text(*command[:3])
            assert re.search(rf"^\s+{re.escape(command[3])}\b", known, re.M) or f"{{{command[3]}" in known \
                or f",{command[3]}," in known or f",{command[3]}}}" in known, f"{doc}:{line}: tfdet has no {command[3]}"
        text = help_text(*command)
        for flag in flags(rest):
            assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", text, re.M), (
                f"{doc}:{line}: `{' '.join(one)}` uses {flag}, which `{' '.join(command[1:])} --help` does not know")


@pytest.mark.parametrize("command", CHEAP, ids=[" ".join(c) for c in CHEAP])
def test_the_cheap_commands_run_as_written(command):
    shown = {tuple(one) for _, _, words in SHOWN for one in alternatives(list(words))}
    assert any(w[:len(command)] == tuple(command) for w in shown), command
    done = subprocess.run([sys.executable, "-m", "tfdet.cli", *command[1:]], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]


def test_every_project_file_the_docs_name_exists():
    named = set()
    for path in documents():
        text = open(path).read()
        for found in re.findall(r"(?<![\w/.-])((?:tests|benchmarks|pipeline|components|models|tfdet|notebooks|docs)"
                                r"/[\w./-]*\w\.(?:py|md|ipynb|j2|json|png|lock|xml|sha256))", text):
            named.add((os.path.relpath(path, REPO), found))
    missing = [(doc, name) for doc, name in sorted(named) if not os.path.exists(os.path.join(REPO, name))
               and not os.path.exists(os.path.join(REPO, os.path.dirname(doc), name)) and not at_commit(doc, name)]
    assert len(named) > 30 and missing == [], missing


def at_commit(doc: str, name: str) -> bool:
    """Whether a file the docs name beside a commit (a finished study: "benchmarks/x.py at 805c168") is in that
    commit."""
    for paragraph in open(os.path.join(REPO, doc)).read().split("\n\n"):
        if name not in paragraph:
            continue
        for commit in re.findall(r"\b[0-9a-f]{7,12}\b", paragraph):
            found = subprocess.run(["git", "cat-file", "-e", f"{commit}:{name}"], cwd=REPO, capture_output=True)
            if found.returncode == 0:
                return True
    return False
