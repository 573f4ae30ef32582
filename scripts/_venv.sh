# Sourced by the scripts in this folder: create .venv (Python 3.11) once and install the
# project with the given extras. Re-running is cheap: pip only checks the pins.
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
python -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS:-}]"
