#!/usr/bin/env bash
# The quickstart: install jupyter_amlexec in .venv and run a first experiment on the local target.
# Needs only python3 (>= 3.10) with venv; no Docker, no server. The run history is an embedded
# SQLite database under $AMLEXEC_HOME (default: ~/.local/share/jupyter/amlexec).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[jupyter]' nbclient
export PATH="$repo/.venv/bin:$PATH"

work="$(mktemp -d)"
cp -r examples/quickstart "$work/project"
cp example_notebooks/quickstart.ipynb "$work/project/"
cd "$work/project"
echo "== A Workbench-style project in $work/project"
amlexec computetarget list
echo; echo "== amlexec experiment submit -c local train.py 0.05"
amlexec experiment submit -c local train.py 0.05
amlexec experiment submit -c local train.py 0.1 10
echo; echo "== amlexec history list"
amlexec history list
echo; echo "== amlexec history last -o json"
amlexec history last -o json
echo; echo "== The same from a notebook (executed in a real kernel): quickstart.ipynb"
python -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
jupyter execute --inplace quickstart.ipynb
echo "Executed notebook saved at $work/project/quickstart.ipynb"
