"""The ``incamera`` command: ``serve``, ``admin <action>`` and ``bench <name>``.

Each subcommand lives in its own module with its own ``main(argv)`` so that starting one
never imports the others (the media worker must not import the web server).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "serve": ("incamera.server.main", "run the server (web app, signalling, media workers)"),
    "admin": ("incamera.server.admin", "accounts: create-user, reset-password, disable-user, ..."),
}
BENCHMARKS = {
    "forward": ("incamera.bench.forward", "SFU forwarding rate with real ICE/DTLS/SRTP sessions"),
    "join": ("incamera.bench.join", "meeting link to first remote video frame, headless Chromium"),
    "e2ee": ("incamera.bench.e2ee", "MLS cost of joining: time to keys, message sizes"),
}


def _usage() -> str:
    lines = ["usage: incamera <command> [options]", "", "commands:"]
    lines += [f"  {name:<16} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += [f"  bench {name:<10} {help_}" for name, (_, help_) in BENCHMARKS.items()]
    lines += ["", "Run 'incamera <command> --help' for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] == "bench":
        if len(args) < 2 or args[1] not in BENCHMARKS:
            print(_usage(), file=sys.stderr)
            return 2
        module, _ = BENCHMARKS[args[1]]
        rest = args[2:]
    elif args[0] in COMMANDS:
        module, _ = COMMANDS[args[0]]
        rest = args[1:]
    else:
        print(f"incamera: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    result: int = importlib.import_module(module).main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
