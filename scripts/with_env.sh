#!/usr/bin/env bash
# Run a command with the project environment (see env.sh).
set -e
source "$(dirname "$0")/env.sh"
exec "$@"
