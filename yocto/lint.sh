#!/usr/bin/env bash
# Lints meta-roombox's recipes with oelint-adv (PyPI), beside yocto/check-layer.sh (which checks
# what a linter cannot: the recipe against the repository). oelint-adv lives in a venv of the
# project's own ($ROOMBOX_OELINT_VENV, default ~/.cache/roombox-oelint-venv), pinned, created on
# first use. Rules in oelint-suppressions are skipped, each with its reason; info-level
# suggestions are not gated. Prints one line per file and `N passed, N failed` last.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${ROOMBOX_OELINT_VENV:-$HOME/.cache/roombox-oelint-venv}"
version=9.11.2
if [[ "$("$venv/bin/oelint-adv" --version 2>/dev/null)" != *"$version"* ]]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "oelint-adv==$version" || {
        echo "lint: cannot install oelint-adv $version into $venv" >&2
        echo "0 passed, 1 failed"
        exit 1
    }
fi
suppress=()
while read -r rule _; do
    [[ -z "$rule" || "$rule" == \#* ]] || suppress+=(--suppress "$rule")
done <"$here/oelint-suppressions"
passed=0
failed=0
cd "$here"
while IFS= read -r f; do
    if out="$("$venv/bin/oelint-adv" --quiet --relpaths --hide info --release scarthgap \
        "${suppress[@]}" "$f" 2>&1)" && [[ -z "$out" ]]; then
        echo "ok      oelint-adv $f"
        passed=$((passed + 1))
    else
        echo "FAILED  oelint-adv $f"
        echo "$out" | sed 's/^/        /'
        failed=$((failed + 1))
    fi
done < <(find meta-roombox examples -name '*.bb' -o -name '*.bbappend' | sort)
echo "$passed passed, $failed failed"
((failed == 0))
