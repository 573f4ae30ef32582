# Sourced by the scripts in this folder: create .venv (Python 3.11) once and install the project
# with the given extras. Re-running is cheap: the install is skipped while pyproject.toml and the
# extras are unchanged (a stamp in .venv records what was installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${EXTRAS:-none}"
if [ ! -f "$stamp" ]; then
    python -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS:-}]"
    touch "$stamp"
fi
