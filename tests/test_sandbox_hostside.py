"""The host side of the code interpreter against a hostile sandbox: planted symlinks, swapped files and directories,
a tampered socket dir and malformed kernel messages never make the host (root, here) read, write or connect where
the sandboxed code points it. Everything is driven through the public tool API, as model-written code would be.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from qwen_agent.sync import run_sync
from qwen_agent.tools.code_interpreter import CodeInterpreter, SandboxConfig, hostfs
from qwen_agent.tools.output import ToolOutput

HOST_TEXT = "host only: must never change or leak"


@pytest.fixture(scope="module")
def host_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("host") / "secret.txt"
    path.write_text(HOST_TEXT)
    return path


@pytest.fixture(scope="module")
def tool(tmp_path_factory, host_file):
    t = CodeInterpreter(exec_timeout=20.0, work_dir=tmp_path_factory.mktemp("work"))
    run_sync(t.ensure_started())
    yield t
    t.close()
    assert host_file.read_text() == HOST_TEXT


async def run(t: CodeInterpreter, code: str) -> ToolOutput:
    return await t.execute({"code": code})


async def test_notebook_export_replaces_a_planted_symlink_instead_of_writing_through_it(tool, host_file):
    # Another test of this module's shared kernel may have exported session.ipynb already: plant over it.
    out = await run(tool, "import os\nif os.path.lexists('session.ipynb'): os.remove('session.ipynb')\n"
                          f"os.symlink({str(host_file)!r}, 'session.ipynb')\nprint('planted')")
    assert out.data["status"] == "ok", out.text
    path = tool.save_notebook()
    assert host_file.read_text() == HOST_TEXT
    assert not path.is_symlink() and json.loads(path.read_text())["nbformat"] == 4
    # a directory on the way swapped for a symlink: refused, not followed
    await run(tool, f"import os\nos.symlink({str(host_file.parent)!r}, 'exports')")
    with pytest.raises(hostfs.UnsafePathError):
        tool.save_notebook(tool.work_dir / "exports" / "nb.ipynb")
    assert sorted(os.listdir(host_file.parent)) == ["secret.txt"]


async def test_a_figure_name_planted_as_a_symlink_is_not_written_through(tool, host_file):
    count = (await run(tool, "print(1)")).data["execution_count"] + 1
    await run(tool, f"import os\nfor n in ('figure-{count + 1}-1.png', 'figure-{count + 1}-1-1.png'):\n"
                    f"    os.symlink({str(host_file)!r}, n)")
    out = await run(tool, "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()")
    assert out.data["status"] == "ok" and len(out.files) == 1
    assert out.files[0].filename not in (f"figure-{count + 1}-1.png", f"figure-{count + 1}-1-1.png")
    assert (tool.work_dir / out.files[0].filename).read_bytes().startswith(b"\x89PNG")
    assert host_file.read_text() == HOST_TEXT


async def test_a_figure_swapped_for_a_symlink_after_the_call_never_names_the_target(tool, host_file):
    out = await run(tool, "import matplotlib.pyplot as plt\nplt.bar(['a'], [1]); plt.show()")
    name = out.files[0].filename
    await run(tool, f"import os\nos.remove({name!r}); os.symlink({str(host_file)!r}, {name!r})")
    urls = [p.image_url.url for p in out.content_parts() if p.type == "image_url"]
    assert urls and all(str(host_file) not in u and u.endswith(name) for u in urls), urls
    with pytest.raises(hostfs.UnsafePathError):  # the host's reader refuses it
        hostfs.read_bytes(tool.work_dir, name, max_bytes=1 << 20)


async def test_written_files_listing_does_not_follow_planted_directory_links(tool, host_file):
    out = await run(tool, f"""
import os
os.symlink({str(host_file.parent)!r}, 'hostdir')
os.makedirs('real', exist_ok=True)
open('real/out.csv', 'w').write('a,b\\n1,2\\n')""")
    listed = out.text.split("[files written:", 1)[1] if "[files written:" in out.text else ""
    assert "real/out.csv" in listed and "secret" not in listed and "hostdir" not in listed, out.text
    names = [rel for rel, _ in hostfs.walk(tool.work_dir)]
    assert not any(rel.startswith("hostdir/") for rel in names)


async def test_adding_a_file_replaces_a_planted_link_at_its_name(tool, host_file, tmp_path):
    await run(tool, f"import os\nos.symlink({str(host_file)!r}, 'data.csv')")
    src = tmp_path / "data.csv"
    src.write_text("x,y\n1,2\n")
    tool.add_files([src])
    assert host_file.read_text() == HOST_TEXT
    assert (await run(tool, "print(open('data.csv').read())")).data["stdout"] == "x,y\n1,2\n\n"


async def test_a_socket_swapped_for_a_link_to_a_host_socket_is_never_followed(tool, tmp_path):
    """The kernel's socket dir is writable inside; the host connects only through links it pinned at start."""
    host_sock_path = tmp_path / "host.sock"  # a host-only Unix socket the sandbox cannot see
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(host_sock_path))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        # every socket the kernel made is replaced by a link to the host socket's path (as seen from the host)
        out = await run(tool, f"""
import os
for name in os.listdir('/run/kernel'):
    os.rename('/run/kernel/' + name, '/run/kernel/' + name + '.old')
    os.symlink({str(host_sock_path)!r}, '/run/kernel/' + name)
print(sorted(os.listdir('/run/kernel')))""")
        assert out.data["status"] == "ok"
        assert (await run(tool, "print('still connected')")).data["stdout"] == "still connected\n"
        await tool.kernel.restart()  # a restart makes a new socket dir; reconnecting must not use the old one
        assert (await run(tool, "print(2 + 2)")).data["stdout"] == "4\n"
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert accepted == []


async def test_malformed_kernel_messages_are_dropped_and_export_keeps_working(tool):
    """Messages the sandbox forges on iopub with types nbformat rejects never reach the notebook."""
    out = await run(tool, """
k = get_ipython().kernel
parent = k.get_parent("shell")
send = lambda kind, content: k.session.send(k.iopub_socket, kind, content, parent=parent)
send("display_data", {"data": {"text/plain": 123}, "metadata": {}})
send("display_data", {"data": "not a bundle", "metadata": []})
send("stream", {"name": "evil", "text": "x"})
send("stream", {"name": "stdout", "text": ["not", "text"]})
send("error", {"ename": 1, "evalue": None, "traceback": "nope"})
send("execute_result", {"data": {"text/plain": "ok"}, "metadata": {}, "execution_count": "NaN"})
# content too deep for any JSON decoder's recursion limit, signed like a real message
session = k.session
deep = b"[" * 200_000 + b"]" * 200_000
header = session.msg_header("display_data")
parts = [session.pack(header), session.pack(parent["header"]), session.pack({}), deep]
session.send_raw(k.iopub_socket, parts)
print("forged")""")
    assert out.data["status"] == "ok" and "forged" in out.data["stdout"]
    assert "dropped" in out.text
    path = tool.save_notebook()
    assert json.loads(path.read_text())["nbformat"] == 4
    assert (await run(tool, "print('next')")).data["stdout"] == "next\n"
    assert tool.save_notebook() == path


async def test_files_left_at_close_are_copied_back_without_following_links(tmp_path, host_file):
    """As root the work dir is a tmpfs while the session runs; at close its plain files are put back on disk."""
    work = tmp_path / "work"
    t = CodeInterpreter(sandbox=SandboxConfig(), work_dir=work, preload=False)
    await t.ensure_started()
    await run(t, f"""
import os
os.makedirs('results', exist_ok=True)
open('results/table.csv', 'w').write('1,2\\n')
os.symlink({str(host_file)!r}, 'results/link.txt')
os.mkfifo('results/pipe')""")
    kind = t.kernel.volume.kind
    await t.aclose()
    assert os.path.ismount(work) is False
    assert (work / "results" / "table.csv").read_text() == "1,2\n"
    if kind == "tmpfs":  # copied back: plain files only
        assert not os.path.lexists(work / "results" / "link.txt") and not os.path.lexists(work / "results" / "pipe")
    else:  # no tmpfs (not root): the files were on disk all along, and nothing followed the link
        assert (work / "results" / "link.txt").is_symlink()
    assert host_file.read_text() == HOST_TEXT
