"""The shell commands README.md and docs/*.md show: in fenced blocks without a language (or sh / bash / console),
and in inline code spans that start with one of the project's commands."""

import glob
import os
import re
import shlex
from typing import Iterator, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OURS = ("tfdet", "make", "python")  # the project's commands: each is checked
OTHERS = ("tensorflow_model_server", "docker", "curl", "kubectl", "gcloud", "gsutil", "jupyter", "tensorboard",
          "source", "pip", "git", "export", "cd", "cp", "ls")  # other tools: shown, not checked here


def documents() -> List[str]:
    return [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))),
            os.path.join(REPO, "benchmarks", "README.md")]


def _words(line: str) -> List[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def _substituted(line: str) -> List[str]:
    """The line with each ``$(command)`` as a placeholder word, then the commands it substituted."""
    inner = re.findall(r"\$\(([^()]*)\)", line)
    return [re.sub(r"\$\(([^()]*)\)", "SUBSTITUTED", line), *inner]


def commands() -> Iterator[Tuple[str, int, List[str]]]:
    """(document, line number, words) of every command line shown; ``VAR=value`` prefixes dropped, ``$(...)``
    checked as commands of their own."""
    for path in documents():
        text = open(path).read()
        name = os.path.relpath(path, REPO)
        for block in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M):
            if block.group(1) not in ("", "sh", "bash", "shell", "console"):
                continue
            start = text[:block.start()].count("\n") + 2
            for offset, shown in enumerate(block.group(2).replace("\\\n", " ").splitlines()):
                for line in _substituted(shown.lstrip("$ ")):
                    words = _words(line)
                    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                        words = words[1:]
                    if words and (words[0] in OURS or words[0].startswith(".venv/bin/")):
                        yield name, start + offset, words
        for span in re.finditer(r"`([^`\n]+)`", text):
            words = _words(span.group(1))
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]
            if words and words[0] in OURS and len(words) > 1:
                yield name, text[:span.start()].count("\n") + 1, words
