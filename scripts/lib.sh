# shellcheck shell=bash
# Helpers shared by scripts/test, scripts/stack and scripts/demo. Source it; do not run it.

PG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian 12 packages posgate needs to build, test and run.
PG_DEBIAN_PACKAGES=(build-essential cmake pkg-config
  libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libjwt-dev libhiredis-dev
  libcmocka-dev libxml2-dev libssl-dev zlib1g-dev redis-server curl)

pg_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
pg_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install what is missing (as root, with apt-get); otherwise say exactly what to install.
pg_install_deps() {
  local missing=() p
  for p in "${PG_DEBIAN_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    pg_die "missing Debian packages: ${missing[*]}
  install them with: sudo apt-get install -y ${missing[*]}"
  fi
  pg_say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || pg_die "apt-get install failed for: ${missing[*]}"
}

# pg_npm_ci: the pinned npm tools of package.json / package-lock.json (OpenAPI lint, the docs
# page's script, the contract test's validator) into node_modules, with Node.js and npm from
# Debian when the machine has none. Reinstalls only when the lockfile is newer than the install.
pg_npm_ci() {
  command -v npm >/dev/null 2>&1 || pg_install_deps nodejs npm
  if [ "$PG_ROOT/node_modules/.package-lock.json" -nt "$PG_ROOT/package-lock.json" ]; then
    return 0
  fi
  pg_say "npm ci (pinned OpenAPI tools and docs assets)"
  (cd "$PG_ROOT" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null) \
    || pg_die "npm ci failed in $PG_ROOT"
}

# pg_build DIR [cmake options...]: configure (once) and build incrementally.
pg_build() {
  local dir=$1; shift
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S "$PG_ROOT" -B "$dir" "$@" >"$dir.configure.log" 2>&1 \
      || { cat "$dir.configure.log" >&2; pg_die "cmake configure failed"; }
  fi
  cmake --build "$dir" -j"$(nproc)" >"$dir.build.log" 2>&1 \
    || { tail -n 60 "$dir.build.log" >&2; pg_die "build failed (full log: $dir.build.log)"; }
}

# pg_redis_start DIR: a private redis-server with AOF on and appendfsync always, in DIR, on a
# free loopback port. Sets PG_REDIS_PID and PG_REDIS_PORT. Redis cannot pick its own port, so we
# try random high ports until one binds (redis exits at once when the port is taken).
pg_redis_start() {
  local dir=$1 port i
  mkdir -p "$dir"
  for i in $(seq 1 20); do
    port=$(( 20000 + RANDOM % 40000 ))
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
      --appendfsync always --save '' --daemonize no --logfile "$dir/redis.log" &
    PG_REDIS_PID=$!
    if pg_wait_redis "$port" 50; then
      PG_REDIS_PORT=$port
      return 0
    fi
    kill "$PG_REDIS_PID" 2>/dev/null || true
    wait "$PG_REDIS_PID" 2>/dev/null || true
  done
  pg_die "could not start redis-server (see $dir/redis.log)"
}

# pg_wait_redis PORT TRIES: PING every 100 ms.
pg_wait_redis() {
  local i
  for i in $(seq 1 "$2"); do
    [ "$(redis-cli -p "$1" PING 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.1
  done
  return 1
}

# pg_wait_file PATH SECONDS PID: wait for a ready file while the process lives.
pg_wait_file() {
  local path=$1 secs=$2 pid=$3 i
  for i in $(seq 1 $(( secs * 10 ))); do
    [ -s "$path" ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# pg_json_get FILE KEY: a top-level string or number from a small flat JSON file.
pg_json_get() {
  sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$1"
}

# pg_stop_pid PID: TERM, wait up to 10 s, then KILL.
pg_stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
