"""The table of each command's variables matches Settings and the code that reads them.

The commands' own code (web/cli/main.py) is read as a syntax tree: every `settings.<name>` a
command's handler reaches through main.py's functions must be listed for it, every name listed
must be read, and a command that hands the whole Settings to other modules (where its reads
cannot be followed) must be declared as reading every setting.
"""

from __future__ import annotations

import ast
import inspect

import pytest

from configs.settings import Settings, SettingsError
from web.cli import main, usage
from web.cli.usage import ALWAYS, COMMANDS, env_name, fields_read, required, settings_class

MAIN = ast.parse(inspect.getsource(main))
FUNCTIONS = {
    node.name: node
    for node in MAIN.body
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
}


def property_fields() -> dict[str, set[str]]:
    """Settings' properties and the fields each reads (`self.<field>`)."""
    tree = ast.parse(inspect.getsource(Settings))
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
        ):
            found[node.name] = {
                each.attr
                for each in ast.walk(node)
                if isinstance(each, ast.Attribute)
                and isinstance(each.value, ast.Name)
                and each.value.id == "self"
            }
    return found


PROPERTIES = property_fields()


def reached(handler: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The handler and every main.py function it calls, directly or not."""
    seen, todo = [handler], [handler]
    while todo:
        for node in ast.walk(FUNCTIONS[todo.pop()]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                if name in FUNCTIONS and name not in seen:
                    seen.append(name)
                    todo.append(name)
    return [FUNCTIONS[name] for name in seen]


def reads_of(command: str) -> tuple[set[str], list[str]]:
    """The Settings fields `command`'s code reads, and the calls it hands the Settings to."""
    fields: set[str] = set()
    handed: list[str] = []
    for function in reached(f"cmd_{command}"):
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "settings"
            ):
                fields |= PROPERTIES.get(node.attr, {node.attr})
            if isinstance(node, ast.Call):
                args = [*node.args, *(k.value for k in node.keywords)]
                if any(isinstance(a, ast.Name) and a.id == "settings" for a in args):
                    handed.append(ast.unparse(node.func))
    return fields, handed


def test_every_command_has_a_subparser_and_every_subparser_a_row() -> None:
    parser = main.build_parser()
    (sub,) = (a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    assert set(FUNCTIONS) >= {f"cmd_{name}" for name in COMMANDS}


def test_every_listed_name_is_a_setting_and_every_extra_is_not() -> None:
    for command, row in COMMANDS.items():
        for name in row.reads or ():
            assert name in Settings.model_fields, (command, name)
        for variable in row.extra:
            assert variable.lower() not in Settings.model_fields, (command, variable)
            assert variable in inspect.getsource(main), (command, variable)
    assert set(ALWAYS) <= set(Settings.model_fields)


@pytest.mark.parametrize("command", [c for c, row in COMMANDS.items() if row.reads is not None])
def test_a_listed_command_reads_exactly_what_it_lists(command: str) -> None:
    fields, handed = reads_of(command)
    assert handed == [], f"{command} hands Settings to {handed}: list it as reading every one"
    assert fields <= set(fields_read(command)), fields - set(fields_read(command))
    assert set(COMMANDS[command].reads or ()) <= fields, "listed but not read"


def test_the_analysis_sees_hand_overs_and_properties() -> None:
    """The checks above can fail: web hands Settings over, relay reads a property."""
    web_fields, web_handed = reads_of("web")
    assert "create_app" in web_handed and "stop_timeout_seconds" in web_fields
    relay_fields, _ = reads_of("relay")
    assert {"metrics_dir", "data_dir"} <= relay_fields  # settings.metrics_root


def test_required_variables_are_settings_without_a_default() -> None:
    assert required("migrate") == ("database_url",)
    assert required("seed") == ("database_url", "redis_url")
    everything = tuple(n for n, f in Settings.model_fields.items() if f.is_required())
    assert required("web") == everything
    assert required("up") == ()
    for command in COMMANDS:
        assert set(required(command)) <= set(fields_read(command))


def test_a_command_asks_only_for_the_required_settings_it_reads(monkeypatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/shop")
    settings = settings_class("migrate").from_env()
    assert str(settings.database_url) == "postgresql://postgres@127.0.0.1/shop"
    assert settings.secret_key is None  # unread: reading it anyway fails loudly
    with pytest.raises(SettingsError) as seed_error:
        settings_class("seed").from_env()
    assert str(seed_error.value) == "REDIS_URL: is not set"
    with pytest.raises(SettingsError) as web_error:
        settings_class("web").from_env()
    assert str(web_error.value).count("is not set") == 3
    assert settings_class("web") is Settings


def test_an_unread_variable_that_is_set_is_still_checked_when_read(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "not a url")
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        settings_class("migrate").from_env()


def test_help_texts_name_each_variable() -> None:
    text = usage.overview()
    for command in COMMANDS:
        assert f"  {command} " in text
    for command in COMMANDS:
        epilog = usage.command_epilog(command)
        for field in required(command):
            assert env_name(field) in epilog
        for example in COMMANDS[command].examples:
            assert example.startswith(f"aioshop {command}") or f" aioshop {command}" in example
            assert example in epilog
