#!/usr/bin/env bash
# Checks meta-roombox without BitBake (see check_layer.py for what is checked and what is not).
# Prints one line per check and `N passed, N failed` last; exits 1 if any check failed.
# Needs python3 >= 3.11 (tomllib), bash and git. Takes a second or two; builds nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "check-layer: needs python3 3.11 or newer (tomllib)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
exec python3 "$here/check_layer.py" "$@"
