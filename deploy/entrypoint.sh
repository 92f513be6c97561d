#!/bin/sh
# The container's entrypoint: secrets from mounted files, then hashguard itself.
#
# For every HASHGUARD_X_FILE=/path in the environment, HASHGUARD_X is set to that file's content
# (a trailing newline dropped) and HASHGUARD_X_FILE is removed, so a Docker or Kubernetes secret
# mounted as a file reaches hashguard's settings without its value ever appearing in the
# container's definition. A variable set directly wins over its _FILE; a missing file is an error.
set -eu
for name in $(env | sed -n 's/^\(HASHGUARD_[A-Z0-9_]*\)_FILE=.*$/\1/p'); do
    eval "path=\${${name}_FILE}"
    unset "${name}_FILE"
    if eval "[ -n \"\${${name}+set}\" ]"; then
        continue
    fi
    if [ ! -r "$path" ]; then
        echo "hashguard-entrypoint: ${name}_FILE names $path, which cannot be read" >&2
        exit 64
    fi
    value=$(cat "$path")
    export "$name=$value"
done
exec hashguard "$@"
