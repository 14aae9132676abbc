"""The ``modelwire`` command line: inspect plugins and configs, and call models."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from modelwire.errors import BadRequestError, ModelWireError, UnsupportedOperationError
from modelwire.redact import redacted

__all__ = ["CommandRegistry", "main"]

CONFIG_ENV = "MODELWIRE_CONFIG"


class CommandRegistry:
    """What ``register_commands`` hooks receive: ``add`` a sub-command."""

    def __init__(self, subparsers: Any) -> None:
        self._subparsers = subparsers
        self.names: list[str] = []

    def add(
        self,
        name: str,
        *,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None:
        if name in self._subparsers.choices:
            raise ValueError(f"the command {name!r} already exists")
        parser = self._subparsers.add_parser(name, help=help, description=help)
        configure(parser)
        parser.set_defaults(handler=run)
        self.names.append(name)


def _print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)
            ).rstrip()
        )


def cmd_types(args: argparse.Namespace) -> int:
    from modelwire.plugins import plugin_manager

    manager = plugin_manager()
    seen: dict[str, Any] = {}
    for registration in manager.types.values():
        seen.setdefault(registration.model_type, registration)
    rows = [seen[name].to_dict() for name in sorted(seen)]
    for name, claims in sorted(manager.conflicts.items()):
        rows.append(
            {
                "model_type": name,
                "distribution": " + ".join(c.distribution for c in claims),
                "aliases": [],
                "target": "CONFLICT: registered twice",
                "plugin": "",
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no model types installed; install a provider, e.g. pip install modelwire-openai")
        return 0
    _print_table(
        [[r["model_type"], r["distribution"], ", ".join(r["aliases"]), r["target"]] for r in rows],
        ["MODEL_TYPE", "DISTRIBUTION", "ALIASES", "TARGET"],
    )
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from modelwire.plugins import plugin_manager

    plugins = [info.to_dict() for info in plugin_manager().plugins]
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    _print_table(
        [
            [p["name"], p["distribution"], p["version"], p["status"], ", ".join(p["model_types"])]
            for p in plugins
        ],
        ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "MODEL_TYPES"],
    )
    for plugin in plugins:
        if plugin["error"]:
            print(f"\n{plugin['distribution']} ({plugin['name']}) failed: {plugin['error']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from modelwire.registry import ModelRegistry

    try:
        registry = ModelRegistry(args.config)
    except ModelWireError as error:
        if args.json:
            issues = getattr(error, "issues", None)
            print(
                json.dumps(
                    {
                        "ok": False,
                        "error": str(error),
                        "issues": [
                            {"config_name": i.config_name, "key": i.key, "message": i.message}
                            for i in issues or []
                        ],
                    },
                    indent=2,
                )
            )
        else:
            print(f"error: {error}", file=sys.stderr)
        return 1
    configs = [registry.config(name) for name in registry]
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "configs": [
                        {"config_name": c.config_name, "model_type": c.model_type} for c in configs
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(f"{args.config}: {len(configs)} config(s) OK")
    for config in configs:
        shown = json.dumps(redacted(config.params), ensure_ascii=False)
        print(f"  {config.config_name} ({config.model_type}) {shown}")
    return 0


def _load(args: argparse.Namespace) -> Any:
    from modelwire.registry import ModelRegistry

    source = args.config or os.environ.get(CONFIG_ENV)
    if not source:
        raise SystemExit(f"error: pass --config FILE or set {CONFIG_ENV}")
    return ModelRegistry(source).load_model(args.config_name)


def cmd_chat(args: argparse.Namespace) -> int:
    from modelwire.message import Msg

    model = _load(args)
    text = args.message if args.message is not None else sys.stdin.read()
    msgs = []
    if args.system:
        msgs.append(Msg("system", args.system, role="system"))
    msgs.append(Msg("user", text, role="user"))
    prompt = model.format(*msgs)
    kwargs = {"tools": _tools(args.tools)} if args.tools else {}
    if args.no_stream or not model.supports_stream:
        response = model(prompt, **kwargs)
        print(response.text)
        _print_tool_calls(response.tool_calls)
        return 0
    calls = None
    try:
        for chunk in model.stream(prompt, **kwargs):
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            calls = chunk.tool_calls or calls
    except UnsupportedOperationError:
        response = model(prompt, **kwargs)
        print(response.text)
        _print_tool_calls(response.tool_calls)
        return 0
    sys.stdout.write("\n")
    _print_tool_calls(calls)
    return 0


def _tools(path: str) -> list[Any]:
    """The tools of ``--tools``: a JSON list of OpenAI-style function dicts."""
    try:
        with open(path, encoding="utf-8") as file:
            tools = json.load(file)
    except OSError as exc:
        raise BadRequestError(f"--tools {path!r} cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise BadRequestError(f"--tools {path!r} is not JSON ({exc})") from None
    if not isinstance(tools, list):
        raise BadRequestError(
            f"--tools {path!r} must hold a JSON list of tools"
            ' ({"type": "function", "function": {"name", "description", "parameters"}})'
        )
    return tools


def _print_tool_calls(calls: list[Any] | None) -> None:
    """One line per tool call the model made: ``tool call <name> <arguments as JSON>``."""
    for call in calls or ():
        arguments = json.dumps(call.get("input") or {}, ensure_ascii=False)
        print(f"tool call {call.get('name')} {arguments}")


def cmd_embed(args: argparse.Namespace) -> int:
    model = _load(args)
    response = model(list(args.texts))
    print(json.dumps(response.embedding))
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    model = _load(args)
    response = model(args.prompt)
    for url in response.image_urls or []:
        print(url)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelwire", description="Call any model service through one interface."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("types", help="list the installed model types")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_types)

    p = sub.add_parser("plugins", help="list plugins and why any failed to load")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser("check", help="validate a config file without calling any model")
    p.add_argument("config", help="JSON or YAML config file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_check)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("config_name", help="the config_name to call")
        p.add_argument("-c", "--config", help=f"config file (default: ${CONFIG_ENV})")

    p = sub.add_parser("chat", help="send one message and stream the reply")
    model_args(p)
    p.add_argument("message", nargs="?", help="the message (default: read standard input)")
    p.add_argument("--system", help="a system prompt")
    p.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    p.add_argument(
        "--tools",
        metavar="FILE.json",
        help="tools the model may call (a JSON list of OpenAI-style function dicts);"
        " the calls it makes are printed, one per line",
    )
    p.set_defaults(handler=cmd_chat)

    p = sub.add_parser("embed", help="print the embeddings of texts as JSON")
    model_args(p)
    p.add_argument("texts", nargs="+", help="texts to embed")
    p.set_defaults(handler=cmd_embed)

    p = sub.add_parser("image", help="generate an image and print its URL(s)")
    model_args(p)
    p.add_argument("prompt", help="what to draw")
    p.set_defaults(handler=cmd_image)

    from modelwire.plugins import plugin_manager

    plugin_manager().register_commands(CommandRegistry(sub))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ModelWireError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
