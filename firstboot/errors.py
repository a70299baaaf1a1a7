"""Error types shared by the agent's modules, and the exit codes the CLI maps them to."""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes (documented in docs/agent.md). argparse itself uses 2 for usage errors.
EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID_INPUT = 3
EXIT_NO_METADATA = 4
EXIT_LOCKED = 5


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with an input document, located by a dotted field path."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class GoldstackError(Exception):
    """Base class: errors the CLI reports as one clear message instead of a traceback."""

    exit_code = EXIT_STEP_FAILED


class InvalidInput(GoldstackError):
    """A document or inventory is wrong; nothing has been written."""

    exit_code = EXIT_INVALID_INPUT

    def __init__(self, source: str, problems: list[FieldProblem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is not valid ({len(problems)} problem(s)):\n{lines}")


class NoMetadata(GoldstackError):
    """No metadata source had a Goldstack document."""

    exit_code = EXIT_NO_METADATA


class SourceError(GoldstackError):
    """A metadata source exists but could not be read."""

    exit_code = EXIT_NO_METADATA


class AgentLocked(GoldstackError):
    """Another agent run holds the lock."""

    exit_code = EXIT_LOCKED


class UsageError(GoldstackError):
    """A command-line value that does not fit (the CLI's usage exit code)."""

    exit_code = EXIT_USAGE
