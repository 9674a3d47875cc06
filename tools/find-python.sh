#!/usr/bin/env bash
# Print the path of a Python 3.13 interpreter (the Lambda runtime's version), or explain what
# to install and fail. The Makefile makes its virtual environments with it.
#
# Tries, in order: $PYTHON (if set, it must be 3.13), python3.13 on PATH, pyenv's 3.13
# (`pyenv prefix 3.13`, then ~/.pyenv/versions/3.13*), /usr/local/bin and /usr/bin.
set -euo pipefail

WANT="${WXAUTH_PYTHON_VERSION:-3.13}"

is_wanted() {
  [[ -n "$1" ]] && "$1" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$WANT')" 2>/dev/null
}

found() {
  # The interpreter itself, not a pyenv shim whose answer depends on the current directory.
  "$1" -c 'import sys; print(sys.executable)'
  exit 0
}

if [[ -n "${PYTHON:-}" ]]; then
  is_wanted "$PYTHON" && found "$PYTHON"
  echo "PYTHON=$PYTHON is not Python $WANT" >&2
  exit 1
fi

candidates=("python$WANT")
if command -v pyenv >/dev/null 2>&1; then
  prefix="$(pyenv prefix "$WANT" 2>/dev/null || true)"
  [[ -n "$prefix" ]] && candidates+=("$prefix/bin/python$WANT")
fi
# Newest patch release first (3.13.10 before 3.13.9).
while IFS= read -r path; do
  candidates+=("$path")
done < <(compgen -G "${PYENV_ROOT:-$HOME/.pyenv}/versions/$WANT*/bin/python$WANT" | sort -rV)
candidates+=("/usr/local/bin/python$WANT" "/usr/bin/python$WANT")

for candidate in "${candidates[@]}"; do
  if is_wanted "$candidate"; then
    found "$candidate"
  fi
done

cat >&2 <<MSG
No Python $WANT found (tried \$PYTHON, python$WANT on PATH, pyenv, /usr/local/bin, /usr/bin).
wxauth runs on Lambda's python$WANT runtime and its venv must match. Install one, e.g.
    pyenv install $WANT
or your OS's python$WANT package, then run make again (or point PYTHON=/path/to/python$WANT).
MSG
exit 1
