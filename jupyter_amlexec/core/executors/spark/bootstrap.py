"""The application's main file where the driver does not run in the run's folder: YARN cluster mode
(the snapshot unpacked by YARN into the driver's container) and Livy batches (the snapshot as a zip
in Livy's whitelisted folder). It sets the run's environment variables from a file inside the
snapshot (never a command line), enters the snapshot, runs the entry script, and copies outputs/ to
the folder the executor collects from. With a `log_file` (Livy) the driver's stdout and stderr are
also appended to that file, which the executor reads by byte offset. Python >= 3.8, standard
library only: it runs in the cluster's Python, where nothing of ours is installed.
"""

from __future__ import annotations

SETTINGS_FILE = ".amlexec/cluster-run.json"

MAIN = '''\
"""The entry of a jupyter_amlexec run on a Spark cluster (written by the executor; see bootstrap.py)."""
import json, os, runpy, shutil, sys, tempfile, threading, traceback, zipfile


def tee(path):
    """stdout + stderr of this process also into `path` (Livy keeps only a window of lines)."""
    out, (r, w), original = open(path, "ab", buffering=0), os.pipe(), os.dup(2)

    def pump():
        while True:
            data = os.read(r, 65536)
            if not data:
                return
            out.write(data)
            os.write(original, data)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    os.dup2(w, 1)
    os.dup2(w, 2)
    os.close(w)

    def stop():
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(original, 1)
        os.dup2(original, 2)
        thread.join(10)
    return stop


source = sys.argv[1]  # the unpacked snapshot (a folder), or the snapshot as a zip
if not os.path.exists(source):  # shipped with --py-files: found on the path under its own name
    source = next(p for p in sys.path if os.path.basename(p) == os.path.basename(source))
if os.path.isdir(source):
    here = os.path.abspath(source)
else:
    here = tempfile.mkdtemp(prefix="amlexec-run-")
    with zipfile.ZipFile(source) as archive:
        archive.extractall(here)
with open(os.path.join(here, ".amlexec", "cluster-run.json")) as f:
    run = json.load(f)
stop_tee = tee(run["log_file"]) if run.get("log_file") else (lambda: None)
os.environ.update(run["environment"])
os.chdir(here)
sys.path[:0] = [here] + [os.path.join(here, p) for p in run["python_path"]]
sys.argv = [run["entry_script"]] + sys.argv[2:]
try:
    runpy.run_path(run["entry_script"], run_name="__main__")
except SystemExit:
    raise
except BaseException:
    traceback.print_exc()  # into the tee'd log too; the exit status stays a failure
    sys.exit(1)
finally:
    if os.path.isdir("outputs") and run.get("outputs_dir"):
        shutil.copytree("outputs", run["outputs_dir"], dirs_exist_ok=True)
    stop_tee()
'''


def run_settings(
    environment: dict[str, str],
    python_path: list[str],
    entry_script: str,
    outputs_dir: str,
    log_file: str | None = None,
) -> dict[str, object]:
    """The content of SETTINGS_FILE for one run (`log_file`: where the driver's output also goes)."""
    return {
        "environment": {**environment, "PYTHONUNBUFFERED": "1"},
        "python_path": python_path,
        "entry_script": entry_script,
        "outputs_dir": outputs_dir,
        "log_file": log_file,
    }
