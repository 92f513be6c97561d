#!/bin/sh
# Random secrets for deploy/compose.yaml, one file each in deploy/secrets/ (git-ignored, mode 600).
# Existing files are kept, so running it twice changes nothing. Not for production: there the
# secrets come from your secret store (see docs/scaling.md, "Deployment").
set -eu
dir=$(dirname "$0")/secrets
mkdir -p "$dir"
chmod 700 "$dir"
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
put() {
    [ -e "$dir/$1" ] && return 0
    umask 077
    printf '%s' "$2" > "$dir/$1"
    echo "wrote $dir/$1"
}
put postgres_password "$(random)"
put database_url "postgresql://hashguard:$(cat "$dir/postgres_password")@postgres:5432/hashguard"
put webhook_secret "$(random)"
put grafana_admin_password "$(random)"
