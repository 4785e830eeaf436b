"""The Docker executor driven directly (start -> handle) on the real engine: limits seen from inside
the container, who ended a run, cancel latency, re-attach, the output-size cap, and an engine that
goes away mid-run (a Unix-socket proxy in front of the real engine socket, stopped and restarted)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.errors import TargetUnavailableError
from jupyter_amlexec.core.executors.base import HandleStatus, RunSpec, read_log_chunk
from jupyter_amlexec.core.executors.commands import Framework
from jupyter_amlexec.core.executors.docker import DockerExecutor, DockerRunHandle, DockerSettings
from jupyter_amlexec.core.executors.docker.engine import connect_engine
from jupyter_amlexec.core.models import RunStatus
from jupyter_amlexec.core.project import ComputeTarget, RunConfiguration
from jupyter_amlexec.core.snapshot import SnapshotStore
from tests.sockproxy import UnixSocketProxy

from .conftest import BASE_IMAGE, run_containers

ENGINE_SOCKET = "/var/run/docker.sock"


def box(**keys: object) -> ComputeTarget:
    """A docker target 'box' as its .compute file would say it (no network: nothing needs one)."""
    return ComputeTarget.from_mapping(
        "box", {"type": "docker", "baseDockerImage": BASE_IMAGE, "networkMode": "none", **keys}
    )


def start(
    executor: DockerExecutor, project: Path, home: Path, script: str, *, max_output: int = 2**20
) -> tuple[DockerRunHandle, list[str]]:
    """Start `script` as job.py of a snapshot of `project`; the handle and the control log."""
    (project / "job.py").write_text(script)
    snapshot = SnapshotStore(home).take(project, entry_script="job.py")
    run_id = f"box_{time.time_ns()}"
    spec = RunSpec(
        run_id=run_id,
        experiment="exp",
        project_name=project.name,
        project_root=project,
        entry_script="job.py",
        arguments=(),
        environment_variables={},
        python_path=(),
        framework=Framework.PYTHON,
        target=executor.target,
        run_configuration=RunConfiguration(name="box", target="box", framework="Python"),
        run_dir=home / "runs" / run_id,
        max_output_file_bytes=max_output,
    )
    control: list[str] = []
    return executor.start(spec, snapshot, control.append), control


def follow(
    handle: DockerRunHandle, timeout: float = 60, cursor: str = ""
) -> tuple[HandleStatus, bytes, list[HandleStatus]]:
    """Follow like the runner: wait + read the log from a cursor until the end; every status seen."""
    seen: list[HandleStatus] = []
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = handle.wait(0.5)
        seen.append(state)
        chunk = handle.logs(cursor)
        data, cursor = data + chunk.data, chunk.cursor
        if state.status.terminal:
            break
    rest = handle.logs(cursor)
    return state, data + rest.data, seen


def numbered(lines: int, pause: float, output: str | None = None) -> str:
    """A script printing `line 0` .. `line N-1`, one every `pause` seconds, then writing outputs/OUTPUT."""
    script = f"import os, time\nfor i in range({lines}):\n    print('line', i, flush=True)\n    time.sleep({pause})\n"
    if output:
        script += f"os.makedirs('outputs', exist_ok=True)\nopen('outputs/{output}', 'w').write('done')\n"
    return script


def wait_for_log(handle: DockerRunHandle, text: bytes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in handle.logs("").data:
        assert time.monotonic() < deadline, f"{text!r} never appeared in the log"
        time.sleep(0.05)


@pytest.fixture
def handles(engine: Any) -> Iterator[list[DockerRunHandle]]:
    """Handles made by a test, cleaned up (containers removed) even when the test fails."""
    made: list[DockerRunHandle] = []
    yield made
    for handle in made:
        handle.outage.give_up_after = 0  # an engine still away (a proxy stopped) must not hold us up
        try:
            handle.cleanup()
        except Exception:  # noqa: BLE001 - through a stopped proxy: remove it on the engine itself
            for container in run_containers(engine):
                if container.id == handle.container_id:
                    container.remove(force=True)


def test_cpus_memory_and_shm_size_are_what_the_script_sees(
    handles: list[DockerRunHandle], project: Path, home: Path
) -> None:
    # Given a target with cpus, memory and shmSize set
    executor = DockerExecutor(box(cpus=0.5, memory="96m", shmSize="32m"), home)
    script = (
        "import os\n"
        "def first(*paths):\n"
        "    for p in paths:\n"
        "        if os.path.exists(p): return open(p).read().split()\n"
        "cpu = first('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us')\n"
        "period = first('/sys/fs/cgroup/cpu/cpu.cfs_period_us') or cpu[1:]\n"
        "mem = first('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes')\n"
        "shm = os.statvfs('/dev/shm')\n"
        "print('cpus', int(cpu[0]) / int(period[0]))\n"
        "print('memory', int(mem[0]))\n"
        "print('shm', shm.f_blocks * shm.f_frsize)\n"
    )
    # When a script reads its cgroup limits and the size of /dev/shm
    handle, _ = start(executor, project, home, script)
    handles.append(handle)
    state, log, _ = follow(handle)
    # Then it sees exactly the limits of the .compute file
    assert state.status is RunStatus.COMPLETED, log
    assert b"cpus 0.5\n" in log
    assert f"memory {96 * 2**20}\n".encode() in log
    assert f"shm {32 * 2**20}\n".encode() in log


def test_out_of_memory_names_the_limit_and_the_key_to_raise(
    handles: list[DockerRunHandle], project: Path, home: Path
) -> None:
    # Given a target with a 32m memory limit and a script that allocates far more
    executor = DockerExecutor(box(memory="32m"), home)
    handle, _ = start(
        executor, project, home, "print('allocating', flush=True)\nx = bytearray(512 * 2**20)\n"
    )
    handles.append(handle)
    # When it runs
    state, log, _ = follow(handle)
    # Then the run failed because the container ran out of memory, and the error says what to change
    assert state.status is RunStatus.FAILED and b"allocating" in log
    assert state.exit_code == 137
    assert (
        state.error == "the container ran out of memory (limit 32m: raise `memory` in aml_config/box.compute)"
    )


def test_docker_kill_reads_as_killed_by_sigkill_with_real_times(
    engine: Any, handles: list[DockerRunHandle], project: Path, home: Path
) -> None:
    # Given a running script
    executor = DockerExecutor(box(), home)
    before = time.time()
    handle, _ = start(executor, project, home, "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    handles.append(handle)
    wait_for_log(handle, b"up")
    # When someone kills its container with `docker kill`
    killed_at = time.time()
    engine.api.kill(handle.container_id)
    state, _, _ = follow(handle)
    # Then the error says it was killed by SIGKILL (not "exited with code 137")
    assert state.status is RunStatus.FAILED and state.exit_code == 137
    assert state.error is not None and "killed by signal 9 (SIGKILL" in state.error
    # And the start and end times are the container's own
    assert state.started_at is not None and state.finished_at is not None
    assert before - 1 < state.started_at < killed_at < state.finished_at + 0.01 < time.time() + 1


def test_cancel_stops_the_container_within_a_second(
    engine: Any, handles: list[DockerRunHandle], project: Path, home: Path
) -> None:
    # Given a long-running script
    executor = DockerExecutor(box(), home)
    handle, _ = start(executor, project, home, "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    handles.append(handle)
    wait_for_log(handle, b"up")
    # When the handle cancels it
    asked = time.monotonic()
    handle.cancel()
    while engine.api.inspect_container(handle.container_id)["State"]["Running"]:
        time.sleep(0.01)
    stopped_after = time.monotonic() - asked
    # Then the container has stopped within about a second, and the run reads Canceled
    assert stopped_after < 1.0, f"the container stopped {stopped_after:.2f} s after the cancel"
    print(f"cancel -> container stopped in {stopped_after * 1000:.0f} ms")
    state, _, _ = follow(handle)
    assert state.status is RunStatus.CANCELED
    handle.cancel()  # idempotent on an ended run
    assert handle.poll() == state


def test_reattach_in_a_fresh_handle_continues_the_log_with_each_line_once_and_keeps_the_output_cap(
    handles: list[DockerRunHandle], project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a process that started a run printing numbered lines (and then writing a 2 MB output,
    # over its 1 MB cap) and was killed while it ran
    script = numbered(60, 0.05, output="small.txt") + "open('outputs/big.bin', 'wb').write(b'x' * 2**21)\n"
    code = (
        "import json, sys, time\nfrom pathlib import Path\n"
        "from jupyter_amlexec.core.executors.docker import DockerExecutor\n"
        "from tests.core.executors.test_docker_handle import box, start\n"
        "home = Path(sys.argv[2])\n"
        "handle, _ = start(DockerExecutor(box(), home), Path(sys.argv[1]), home, sys.argv[3])\n"
        "print(json.dumps(handle.to_dict()), flush=True)\ntime.sleep(600)\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", code, str(project), str(home), script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    assert first.stdout is not None
    data = json.loads(first.stdout.readline())
    raw_log = Path(str(data["private_dir"])) / "raw.log"
    deadline = time.monotonic() + 30
    while b"line 10\n" not in read_log_chunk(raw_log, "").data:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    first.kill()
    first.wait()
    seen = read_log_chunk(raw_log, "")
    # When a fresh executor and handle re-attach from the stored description, from that cursor
    again = DockerExecutor(box(), home).attach(data)
    handles.append(again)
    state, rest, _ = follow(again, cursor=seen.cursor)
    # Then the log continues from the cursor: every line exactly once, in order
    assert state.status is RunStatus.COMPLETED
    assert (seen.data + rest).decode().splitlines() == [f"line {i}" for i in range(60)]
    # And the run's 1 MB output cap holds for the new handle, whatever limit its caller passes
    assert data["max_output_file_bytes"] == 2**20
    assert again.collect_outputs(tmp_path / "out", 512 * 2**20, lambda _t: None) == ["small.txt"]


def test_output_size_cap_skips_big_files_and_names_them(
    handles: list[DockerRunHandle], project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a run that writes a small and a big output, and a 1 MB cap (MaxOutputFileSizeMB: 1)
    executor = DockerExecutor(box(), home)
    script = (
        "import os\nos.makedirs('outputs/sub', exist_ok=True)\n"
        "open('outputs/small.txt', 'w').write('small')\n"
        "open('outputs/sub/big.bin', 'wb').write(b'x' * (2 * 2**20))\n"
        "os.symlink('/etc/hostname', 'outputs/link')\n"
    )
    handle, _ = start(executor, project, home, script)
    handles.append(handle)
    assert follow(handle)[0].status is RunStatus.COMPLETED
    # When outputs are collected
    control: list[str] = []
    dest = tmp_path / "outputs"
    files = handle.collect_outputs(dest, 2**20, control.append)
    # Then only the small file came back; the big one and the link are named in the control log
    assert files == ["small.txt"] and (dest / "small.txt").read_text() == "small"
    assert not (dest / "sub" / "big.bin").exists() and not (dest / "link").exists()
    text = "".join(control)
    assert "outputs/sub/big.bin: not collected, 2097152 bytes is over the 1048576-byte limit" in text
    assert "outputs/link" in text


def test_start_says_which_image_container_and_snapshot_size(
    handles: list[DockerRunHandle], project: Path, home: Path
) -> None:
    executor = DockerExecutor(box(), home)
    (project / "data.bin").write_bytes(b"d" * 300_000)
    handle, control = start(executor, project, home, "print('hi')")
    handles.append(handle)
    text = "".join(control)
    assert BASE_IMAGE in text and handle.container_id[:12] in text
    assert re.search(r"Sending the snapshot \(2 files, 30\d kB\)", text), text
    assert follow(handle)[0].status is RunStatus.COMPLETED


def test_engine_lost_mid_run_is_retried_and_the_run_followed_to_its_end(
    engine: Any, handles: list[DockerRunHandle], project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a target whose engine is reached through a proxy (dockerHost), and a run printing
    # numbered lines for a few seconds, then writing an output
    with UnixSocketProxy(tmp_path / "engine.sock", ENGINE_SOCKET) as proxy:
        executor = DockerExecutor(box(dockerHost=proxy.url), home)
        handle, _ = start(executor, project, home, numbered(120, 0.05, output="done.txt"))
        handles.append(handle)
        assert handle.to_dict()["docker_host"] == proxy.url
        wait_for_log(handle, b"line 5\n")
        # When the engine stops answering for three seconds mid-run
        proxy.stop()
        during: list[HandleStatus] = []
        lost_until = time.monotonic() + 3
        while time.monotonic() < lost_until:
            during.append(handle.wait(0.5))
            handle.logs("")
        assert engine.api.inspect_container(handle.container_id)["State"]["Running"]
        proxy.start()
        state, log, _ = follow(handle)
        # Then meanwhile the run read Running, "connection lost ... retrying", never Failed
        assert {s.status for s in during} == {RunStatus.RUNNING}
        assert any("connection lost to the Docker engine" in (s.detail or "") for s in during)
        assert len(during) < 20, "backoff: no hot loop against a lost engine"
        # And once it answered, the run was followed to its real end: every line once, in order
        assert state.status is RunStatus.COMPLETED and state.exit_code == 0
        assert log.decode().splitlines() == [f"line {i}" for i in range(120)]
        # And its outputs were collected and the container removed
        assert handle.collect_outputs(tmp_path / "out", 2**20, lambda _t: None) == ["done.txt"]
        handle.cleanup()
    assert all(c.id != handle.container_id for c in run_containers(engine))


def test_a_run_that_ends_while_the_engine_is_lost_is_collected_when_it_answers(
    engine: Any, handles: list[DockerRunHandle], project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a run on an engine reached through a proxy that prints for one more second after "go"
    with UnixSocketProxy(tmp_path / "engine.sock", ENGINE_SOCKET) as proxy:
        executor = DockerExecutor(box(dockerHost=proxy.url), home)
        script = "print('go', flush=True)\n" + numbered(40, 0.025, output="result.txt")
        handle, _ = start(executor, project, home, script)
        handles.append(handle)
        wait_for_log(handle, b"go")
        # When the engine is away until after the container has ended
        proxy.stop()
        assert handle.wait(0.5).status is RunStatus.RUNNING
        engine.api.wait(handle.container_id, timeout=30)
        assert handle.wait(0.5).status is RunStatus.RUNNING  # still lost: it cannot know yet
        proxy.start()
        # Then the run is followed to its real end: the whole log once, the outputs, its end time
        state, log, _ = follow(handle)
        assert state.status is RunStatus.COMPLETED
        assert log.decode().splitlines() == ["go", *(f"line {i}" for i in range(40))]
        finished = engine.api.inspect_container(handle.container_id)["State"]["FinishedAt"]
        assert state.finished_at is not None and finished.startswith(
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(state.finished_at))
        )
        assert handle.collect_outputs(tmp_path / "out", 2**20, lambda _t: None) == ["result.txt"]
        handle.cleanup()
        assert all(c.id != handle.container_id for c in run_containers(engine))


def test_an_engine_that_never_comes_back_ends_the_run_failed_with_the_reason(
    engine: Any, handles: list[DockerRunHandle], project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a run on an engine reached through a proxy, with a short give-up time for the test
    proxy = UnixSocketProxy(tmp_path / "engine.sock", ENGINE_SOCKET).start()
    executor = DockerExecutor(box(dockerHost=proxy.url), home)
    handle, _ = start(executor, project, home, "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    handles.append(handle)
    handle.outage.give_up_after = 2.0
    wait_for_log(handle, b"up")
    # When the engine stops answering for longer than that
    proxy.stop()
    try:
        state, _, seen = follow(handle, timeout=30)
        # Then the run ends Failed, saying the engine was lost, for how long, and what is left there
        assert state.status is RunStatus.FAILED
        assert state.error is not None and "lost the connection to the Docker engine at" in state.error
        assert "for 2 seconds" in state.error and handle.container_id[:12] in state.error
        assert RunStatus.RUNNING in {s.status for s in seen}
        assert handle.poll() == state  # terminal is final
    finally:
        proxy.start()
        handle.cleanup()  # the engine is back: the container can be removed
        proxy.stop()


def test_a_cancel_while_the_engine_is_lost_is_sent_when_it_answers_again(
    engine: Any, handles: list[DockerRunHandle], project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a long run on an engine reached through a proxy, and the engine gone away
    with UnixSocketProxy(tmp_path / "engine.sock", ENGINE_SOCKET) as proxy:
        executor = DockerExecutor(box(dockerHost=proxy.url), home)
        handle, _ = start(executor, project, home, "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
        handles.append(handle)
        wait_for_log(handle, b"up")
        proxy.stop()
        # When the user cancels meanwhile, it does not raise
        handle.cancel()
        assert engine.api.inspect_container(handle.container_id)["State"]["Running"]
        # Then once the engine answers again, the container is stopped and the run is Canceled
        proxy.start()
        state, log, _ = follow(handle, timeout=30)
        assert state.status is RunStatus.CANCELED and log == b"up\n"  # no shell job notice
        assert not engine.api.inspect_container(handle.container_id)["State"]["Running"]


def test_a_start_while_the_engine_is_lost_is_a_clear_error_not_a_connection_traceback(
    engine: Any, project: Path, home: Path, tmp_path: Path
) -> None:
    # Given an executor that reached its engine once, and then the engine went away
    proxy = UnixSocketProxy(tmp_path / "engine.sock", ENGINE_SOCKET).start()
    executor = DockerExecutor(box(dockerHost=proxy.url), home)
    executor.check()
    proxy.stop()
    # When a run is started, then the error names the engine and what to do
    with pytest.raises(TargetUnavailableError, match=r"no Docker engine answers at unix://.*engine\.sock"):
        start(executor, project, home, "print('never')")
    assert run_containers(engine, home=home) == []


def test_the_engine_connection_is_made_by_a_pluggable_factory_from_the_settings(
    handles: list[DockerRunHandle], project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a factory that reaches the engine its own way (here: through a proxy) for a target
    # whose dockerHost alone would reach nothing
    with UnixSocketProxy(tmp_path / "engine.sock", ENGINE_SOCKET) as proxy:
        asked: list[str] = []

        def through_proxy(settings: DockerSettings) -> Any:
            asked.append(settings.docker_host)
            return connect_engine(replace(settings, docker_host=proxy.url))

        target = box(dockerHost=f"unix://{tmp_path}/nothing-here.sock")
        executor = DockerExecutor(target, home, connect=through_proxy)
        # When a run goes through the executor
        handle, _ = start(executor, project, home, "print('via the factory')")
        handles.append(handle)
        state, log, _ = follow(handle)
        # Then the factory got the target's settings, and every call went through its client
        assert state.status is RunStatus.COMPLETED and log == b"via the factory\n"
        assert asked == [f"unix://{tmp_path}/nothing-here.sock"] and proxy.accepted > 0
        handle.cleanup()
