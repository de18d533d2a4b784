"""The command line's parser (``cli.main``): loaded only for a command line other than how clients start kie-mcp
(no arguments, or ``--sandbox``), which is served with no parser built: argparse alone is a third of a MiB."""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from kie_mcp import __version__
from kie_mcp.config import CONFIGURATION_DOCS


def _finite(text: str) -> float:
    """A number argparse accepts: finite and not negative (``inf`` or ``nan`` would break the simulator)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _port(text: str) -> int:
    """A TCP port argparse accepts: a whole number from 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use a number from 0 to 65535")
    return value


class ArgumentsRefused(Exception):
    """Arguments argparse refused, with the parser that refused them and its words (``main`` decides what follows)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse's parser (and, as their class, its commands'), whose refusal is raised instead of printing the usage
    and exiting: a client that started kie-mcp shows only "Connection closed" for that."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentsRefused(self, message)


class _CommandParser(_Parser):
    """A command's parser (demo, sim, catalog and its actions, serve): arguments it does not take are refused by it,
    under its own usage with its options (``kie-mcp demo [-h] [--keep]``), as argparse refuses a bad value there.
    argparse left them to the top-level parser, whose usage ("kie-mcp [-h] [--version] [--sandbox] COMMAND ...")
    names none of the command's options."""

    def parse_known_args(  # type: ignore[override]  # typeshed's overloads; argparse calls it with both
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:  # every argument after the command is the command's: none is left for the top-level parser
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kie-mcp",
        description="MCP stdio server for KIE.ai image and video generation, with confirm-before-spend.",
        epilog=f"Configuration comes from environment variables and the workspace .env file:\n"
        f"see {CONFIGURATION_DOCS}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog's address whole, never cut at a dash
    )
    parser.add_argument("--version", action="version", version=f"kie-mcp {__version__}")
    sandbox_help = "serve against the built-in KIE simulator: no key, no credits, every result marked sandbox"
    parser.add_argument("--sandbox", action="store_true", help=sandbox_help)
    # ``kie-mcp serve --sandbox`` reads as naturally as ``kie-mcp --sandbox serve``: the commands it applies to
    # take it after their name too (SUPPRESS: absent there, the value given before the command stands).
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS, help=sandbox_help)
    catalog_after = argparse.ArgumentParser(add_help=False)
    catalog_after.add_argument(
        "--sandbox",
        action="store_true",
        default=argparse.SUPPRESS,
        help="ask the built-in KIE simulator instead of KIE (no key needed) and use the sandbox area's cache",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    serving = "serve MCP over stdio (the default; stdio is another name)"
    commands.add_parser("serve", parents=[after], help=serving, description=serving)
    # Its own parser, not an alias: an alias's --help said "usage: kie-mcp serve" (listed under serve, not apart).
    commands.add_parser("stdio", parents=[after], description=serving)
    # --sandbox after a command it does not apply to is refused by that command, in the words it gets before it.
    offline = argparse.ArgumentParser(add_help=False)
    offline.add_argument("--sandbox", action=_NotOffline, nargs=0, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    demo = commands.add_parser(
        "demo", parents=[offline], help="run an offline tour: a sandboxed server driven by a real MCP client"
    )
    demo.add_argument("--keep", action="store_true", help="keep the demo's workspace (its files) and print where")
    sim = commands.add_parser("sim", parents=[offline], help="serve the KIE simulator over HTTP on 127.0.0.1")
    sim.add_argument("--port", type=_port, default=8790, help="port to listen on (default 8790)")
    sim.add_argument("--speed", type=_finite, default=30.0, help="simulated seconds per real second (default 30)")
    sim.add_argument(
        "--balance", type=_finite, default=5000.0, help="starting credits of the sandbox account (default 5000)"
    )
    # --sandbox before the action too (``catalog --sandbox check``), as before or after the whole command.
    catalog = commands.add_parser("catalog", parents=[catalog_after], help="maintain the model catalogue")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    catalog_commands.add_parser(
        "check",
        parents=[catalog_after],
        help="compare the catalogue with KIE's live model and price lists (needs network and "
        "KIE_API_KEY; with --sandbox, the built-in simulator)",
    )
    sync = catalog_commands.add_parser(
        "sync",
        parents=[catalog_after],
        help="read KIE's live models, price feed, schemas and success rates into the workspace cache "
        "(.kie-mcp/catalog-live.json); needs network and KIE_API_KEY",
    )
    sync.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID",
        help="also fetch this model's schema and success rate (repeatable); by default the models this workspace "
        "used in the last 30 days",
    )
    return parser


def options_at(parser: argparse.ArgumentParser, given: list[str]) -> list[frozenset[str]]:
    """For each word of ``given``, the options of the parser that reads it (``--sandbox``, ``-h``): the top-level
    parser's before a command, that command's after it (``--keep`` after demo, ``--port`` after sim), its action's
    after an action (``catalog sync --model``). What an option given there is not, when it is named as one kie-mcp
    does not take (``cli._option_notes``): ``--port`` before ``sim`` is none."""
    reading, taken = parser, []
    for word in given:
        taken.append(frozenset(option for action in reading._actions for option in action.option_strings))
        commands = next((a.choices for a in reading._actions if isinstance(a, argparse._SubParsersAction)), {})
        if not word.startswith("-") and word in commands:
            reading = commands[word]
    return taken


def long_options(parser: argparse.ArgumentParser) -> frozenset[str]:
    """Every long option (``--keep``, ``--model``) of ``parser`` and of each command and action under it."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(option for option in action.option_strings if option.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                found |= long_options(command)
    return frozenset(found)


def offline_already(command: str) -> str:
    """Why --sandbox is refused with ``command`` (demo, sim), before it or after it."""
    return f"--sandbox does not apply to {command}: it runs offline, without KIE or a key, already"


class _NotOffline(argparse.Action):
    """``--sandbox`` after demo or sim: refused as before them (it was "unrecognized arguments" under the top-level
    usage), by the command's own parser, so the usage shown is the command's."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: object, values: object, option_string: str | None = None
    ) -> None:
        parser.error(offline_already(parser.prog.rsplit(" ", 1)[-1]))  # prog: "kie-mcp demo"
