"""``jupyter envs``: the command line (console script ``jupyter-envs``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from ..errors import EnvsError, UsageError
from ..events import Event, LogLine, Progress
from ..facade.manager import get_manager
from ._commands import make_parser, run_command

__all__ = ["main"]


class TerminalOutput:
    """Results on stdout; progress and (with ``-v``) build log lines on stderr."""

    def __init__(self, verbose: bool = False, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self._last: tuple[str, str] | None = None

    def say(self, text: str) -> None:
        """Print a result."""
        print(text)

    def event(self, event: Event) -> None:
        """Print each new phase (and log lines when verbose)."""
        if isinstance(event, Progress):
            key = (event.phase, event.message)
            if key != self._last:
                self._last = key
                print(
                    f"[{event.fraction * 100:3.0f}%] {event.phase}: {event.message}",
                    file=self.stream,
                    flush=True,
                )
        elif isinstance(event, LogLine) and self.verbose:
            print(f"    {event.text}", file=self.stream, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``jupyter envs``; returns the exit status (0 ok, 1 error, 2 bad usage)."""
    words = list(sys.argv[1:] if argv is None else argv)
    verbose = False
    for flag in ("-v", "--verbose"):
        while flag in words:
            words.remove(flag)
            verbose = True
    try:
        parser = make_parser("jupyter envs")
        if not words or words[0] in ("-h", "--help"):
            parser.print_help()
            return 0 if words else 2
        args = parser.parse_args(words)
        run_command(args, get_manager(), TerminalOutput(verbose))
    except SystemExit as exc:  # --help of a verb
        return int(exc.code or 0)
    except UsageError as exc:
        print(f"jupyter envs: {exc}", file=sys.stderr)
        return 2
    except EnvsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
