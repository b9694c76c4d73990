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
#: Written as "none of the allowed characters, unless an astral character other than a plane's last two":
#: a class holding the astral noncharacters one by one made re test each character of a post against
#: all 34 of them (0.2 ms per post body, 12x this; tests/test_errors.py checks every code point).
CONTROL = re.compile("[^\t\n\x0c\r -~\xa0-\ufdcf\ufdf0-\ufffd]"
                     + "(?<![" + "".join(f"{chr(plane << 16)}-{chr(plane << 16 | 0xFFFD)}" for plane in range(1, 17))
                     + "])")


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
