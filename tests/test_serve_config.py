"""`qwen-agent serve` configuration: agents.toml is typed, every bad field is named; exposure needs a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_agent.cli import build_parser, main
from qwen_agent.server import ConfigError, ServeConfig, check_exposure, load_config
from qwen_agent.server.config import is_loopback


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_config_file_is_read_into_typed_profiles(tmp_path: Path) -> None:
    path = write(tmp_path, """
model = "openai:http://127.0.0.1:8000/v1#qwen"
[server]
port = 9000
api_keys = ["sk-abcdefgh"]
max_sessions = 4
[profiles.analyst]
description = "numbers"
code_interpreter = true
tools = ["calculator", "current_time"]
max_steps = 5
temperature = 0.1
function_calling = { format = "nous", constrained = true }
[profiles.plain]
model = "llamacpp:"
system = "Be brief."
""")
    config = load_config(path)
    assert config.server.port == 9000 and config.server.max_sessions == 4
    analyst = config.profiles["analyst"]
    assert analyst.name == "analyst" and analyst.code_interpreter and analyst.function_calling.constrained
    assert analyst.sampling().temperature == 0.1
    assert config.profiles["plain"].model == "llamacpp:"
    card = analyst.describe(config.model)
    assert card["tools"] == ["calculator", "current_time", "code_interpreter"]
    assert card["model"] == "openai:http://127.0.0.1:8000/v1#qwen"


def test_every_bad_field_is_reported_with_its_path_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, """
[server]
port = "eighty"
max_sessions = 0
[profiles.x]
max_steps = 0
tools = ["calculater"]
tempreature = 0.5
function_calling = { mode = "telepathy" }
""")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}: server.port:" in text and "'eighty'" in text
    assert "server.max_sessions: Input should be greater than or equal to 1 (got 0)" in text
    assert "profiles.x.max_steps: Input should be greater than or equal to 1 (got 0)" in text
    assert "unknown tool 'calculater'; built-in tools: calculator" in text
    assert "profiles.x.tempreature: unknown field (check the spelling)" in text
    assert "profiles.x.function_calling.mode:" in text


def test_bad_specs_names_and_toml_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profiles\.p\.model: .*unknown backend 'ftp'"):
        load_config(write(tmp_path, '[profiles.p]\nmodel = "ftp:x"\n'))
    with pytest.raises(ConfigError, match="profile name 'has space'"):
        load_config(write(tmp_path, '[profiles."has space"]\n'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[server\n"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="either `knowledge`"):
        load_config(write(tmp_path, '[profiles.r]\nknowledge = "a"\ndocs = "b"\n'))
    with pytest.raises(ConfigError, match="code_interpreter = true"):
        load_config(write(tmp_path, '[profiles.r]\ntools = ["code_interpreter"]\n'))


def test_defaults_are_assistant_and_with_documents_rag(tmp_path: Path) -> None:
    plain = ServeConfig().with_defaults()
    assert list(plain.profiles) == ["assistant"]
    assistant = plain.profiles["assistant"]
    assert assistant.tools == ["calculator"] and assistant.code_interpreter
    with_docs = ServeConfig().with_defaults(docs=tmp_path)
    assert list(with_docs.profiles) == ["assistant", "rag"] and with_docs.profiles["rag"].docs == tmp_path
    configured = load_config(write(tmp_path, "[profiles.mine]\n")).with_defaults()
    assert list(configured.profiles) == ["mine"]
    with pytest.raises(ConfigError, match="--docs/--store"):
        load_config(write(tmp_path, "[profiles.mine]\n")).with_defaults(docs=tmp_path)


def test_command_line_overrides_and_the_key_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[server]\nport = 9000\n")
    assert load_config(path, {"port": 9100, "host": None}).server.port == 9100
    monkeypatch.setenv("QWEN_AGENT_SERVE_API_KEY", "sk-one-12345678, sk-two-12345678")
    assert load_config(None).server.api_keys == ["sk-one-12345678", "sk-two-12345678"]
    with pytest.raises(ConfigError, match="api_keys"):
        load_config(None, {"api_keys": ["short"]})


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("192.168.1.4", False),
                                           ("::", False), ("example.com", False)])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_listening_beyond_loopback_needs_an_api_key() -> None:
    check_exposure(ServeConfig())  # loopback, no key: fine
    exposed = ServeConfig.model_validate({"server": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0.*--api-key"):
        check_exposure(exposed)
    check_exposure(ServeConfig.model_validate({"server": {"host": "0.0.0.0", "api_keys": ["sk-abcdefgh"]}}))


def test_the_cli_refuses_to_start_exposed_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "0"])
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 1
    out = capsys.readouterr()
    assert "refusing to listen on 0.0.0.0" in out.err + out.out
