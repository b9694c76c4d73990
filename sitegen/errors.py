"""One error type for everything a user can get wrong.

Every problem the build finds is a :class:`Problem` carrying ``(path, line, message)``.
Stages collect problems instead of raising on the first one, so a single build reports
all of them at once; :class:`BuildError` carries the whole list to the CLI.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


#: characters no text of a page may hold: the controls and noncharacters HTML forbids (\x02 and \x03
#: also delimit our internal marks)
CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufdd0-\ufdef"
                     + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
                     + "]")


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int | None
    message: str
    level: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        prefix = "warning: " if self.level == "warning" else ""
        return f"{where}: {prefix}{self.message}"


class SiteError(Exception):
    """Raised for one problem at a known place; stages catch it and add it to a Report."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        super().__init__(message)
        self.problem = Problem(str(path), line, message)

    def __str__(self) -> str:
        return str(self.problem)


class BuildError(Exception):
    """The build found errors; ``problems`` holds every one of them (warnings too)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.level == "error"]
        super().__init__(f"{len(errors)} error(s)")

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@dataclass
class Report:
    """Collects errors and warnings from every stage of a build."""

    problems: list[Problem] = field(default_factory=list)

    def error(self, path: str | Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(str(path), line, message, "error"))

    def warn(self, path: str | Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(str(path), line, message, "warning"))

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def extend(self, problems) -> None:
        self.problems.extend(problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]


def closest(name: str, candidates, n: int = 3) -> list[str]:
    """The few candidates nearest to a misspelt name, for 'did you mean' hints."""
    import difflib

    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
