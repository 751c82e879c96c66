# Shared by the bench/ scripts (sourced after scripts/lib.sh).

# bench_build BUILD_DIR [REV]: export REV (a commit; empty = the working tree) into
# BUILD_DIR/src, configure BUILD_DIR/obj as RelWithDebInfo without tests or sanitizers, build.
# Sets BENCH_SRC and BENCH_BIN. A committed revision makes the figures belong to a commit,
# whatever is being edited in the working tree.
bench_build() {
  local build=$1 rev=${2:-}
  mkdir -p "$build"
  BENCH_SRC=$PG_ROOT
  if [ -n "$rev" ]; then
    BENCH_SRC=$build/src
    rev=$(git -C "$PG_ROOT" rev-parse --short "$rev^{commit}") || pg_die "no such revision: $rev"
    if [ "$(cat "$build/src.rev" 2>/dev/null)" != "$rev" ]; then # same commit: keep it
      rm -rf "$BENCH_SRC" && mkdir -p "$BENCH_SRC"
      git -C "$PG_ROOT" archive "$rev" | tar -x -C "$BENCH_SRC" || pg_die "cannot export revision $rev"
      echo "$rev" >"$build/src.rev"
    fi
  fi
  local obj=$build/obj
  if [ -f "$obj/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$BENCH_SRC" "$obj/CMakeCache.txt"; then
    rm -rf "$obj" # configured for another source tree
  fi
  pg_say "building $BENCH_SRC ($obj, RelWithDebInfo, no sanitizers)"
  if [ ! -f "$obj/CMakeCache.txt" ]; then
    cmake -S "$BENCH_SRC" -B "$obj" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_TESTS=OFF >"$build/configure.log" 2>&1 \
      || { tail -n 30 "$build/configure.log" >&2; pg_die "cmake configure failed"; }
  fi
  cmake --build "$obj" -j"$(nproc)" >"$build/build.log" 2>&1 \
    || { tail -n 30 "$build/build.log" >&2; pg_die "build failed (full log: $build/build.log)"; }
  BENCH_BIN=$obj/bin
}

# bench_cpu_s PID: CPU seconds (user + system) the process has used so far.
bench_cpu_s() {
  local f
  read -r -a f <"/proc/$1/stat" 2>/dev/null || { echo 0; return; }
  # fields after "(comm)": comm has no spaces here (redis-server, posgate, posgate-sim)
  awk -v u="${f[13]}" -v s="${f[14]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (u + s) / hz }'
}

# bench_hwm_kb PID: peak resident set size so far, in KiB.
bench_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
