# Sourced by the scripts in this folder: create the environment $VENV (default .venv, Python 3.11)
# once and install the project with $EXTRAS and any $EXTRA_PACKAGES. Re-running is cheap: the
# install is skipped while pyproject.toml and those settings are unchanged (a stamp records them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
venv="${VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
    "$python_bin" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
settings="$(cat pyproject.toml; echo "${EXTRAS:-none} ${EXTRA_PACKAGES:-}")"
stamp="$venv/.installed-$(echo "$settings" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    # shellcheck disable=SC2086
    python -m pip install --quiet --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}" ${EXTRA_PACKAGES:-}
    touch "$stamp"
fi
