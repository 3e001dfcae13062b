#!/usr/bin/env bash
# `cmake --install` of the build, then a driver built outside the tree against the installed
# package (find_package(Orrery) and pkg-config), run on a cluster of the installed `orrery`.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -u
build="$1"; src="$2"
tmp=$(mktemp -d)
prefix="$tmp/prefix"
cleanup() {
  [ -x "$prefix/bin/orrery" ] && "$prefix/bin/orrery" stop --temp-dir "$tmp/root" > /dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; }
for f in bin/orrery lib/liborrery_api.so lib/liborrery_api_registry.so \
         include/orrery/live/api/orrery_api.h include/orrery/core/status.h \
         lib/cmake/Orrery/OrreryConfig.cmake lib/pkgconfig/orrery.pc; do
  [ -e "$prefix/$f" ] || fail "missing $f"
done
echo "ok: installed"

# The installed library needs nothing from the build tree.
if ldd "$prefix/lib/liborrery_api.so" | grep -q "$build"; then fail "liborrery_api.so refers to the build tree"; fi

cmake -S "$src/tests/install/driver" -B "$tmp/drv" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/cfg.log" 2>&1 || { cat "$tmp/cfg.log"; fail "configure"; }
cmake --build "$tmp/drv" > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "build"; }
echo "ok: built with find_package(Orrery)"

# pkg-config gives the same in one line.
flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs orrery) || fail "pkg-config"
c++ $flags -fPIC -shared -o "$tmp/libpc.so" "$src/tests/install/driver/mycode.cc" $flags || fail "pkg-config build"
echo "ok: built with pkg-config"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$prefix/bin/orrery" start --head --port "$port" --temp-dir "$tmp/root" --num-cpus 2 \
    --dashboard-port 0 > "$tmp/start.log" 2>&1 || { cat "$tmp/start.log"; fail "start"; }
token=$(cat "$tmp/root/session_latest/token")
out=$(ORRERY_ADDRESS="127.0.0.1:$port" ORRERY_TOKEN="$token" timeout 60 "$tmp/drv/driver" 2>&1) \
    || { echo "$out"; fail "driver run"; }
[ "$out" = "$(printf '3\nhello out-of-tree')" ] || { echo "$out"; fail "driver output"; }
echo "ok: the out-of-tree driver ran on the installed cluster"
