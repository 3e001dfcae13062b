#!/usr/bin/env bash
# The container image's runtime package list (live/deploy/docker/Dockerfile, between
# "# Runtime packages" and "# End of runtime packages.") against what the built binaries link:
# installs the build as the image's build stage does (cmake --install, default and examples
# components), reads each installed ELF file's DT_NEEDED libraries, resolves them with ldd and
# asks dpkg -S which Debian package ships each one. That set must equal the Dockerfile's list:
# a missing package is a library the image would lack, an extra one is a package the image
# installs for nothing. The libraries those libraries need come with them (apt dependencies).
# Usage: runtime_packages_test.sh BUILD_DIR SOURCE_DIR        exit 77 (skipped): no dpkg
set -u
build="$1"; src="$2"
dockerfile="$src/live/deploy/docker/Dockerfile"
command -v dpkg-query > /dev/null || { echo "SKIP: dpkg is not installed (not a Debian system)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

prefix="$tmp/prefix"
{ cmake --install "$build" --prefix "$prefix" && cmake --install "$build" --prefix "$prefix" --component examples; } \
  > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; }
for f in bin/orrery lib/liborrery_api_registry.so share/orrery/examples/counter \
         share/orrery/examples/libcounter_actor.so; do
  [ -e "$prefix/$f" ] || fail "the install lacks $f (the image copies it)"
done

# Pass 1: every installed ELF file's DT_NEEDED libraries, resolved by ldd.
: > "$tmp/needed"   # FILE LIB PATH
n_files=0
while IFS= read -r f; do
  head -c 4 "$f" | grep -q $'\x7fELF' || continue
  n_files=$((n_files + 1))
  ldd "$f" > "$tmp/ldd" 2>&1 || fail "ldd $f: $(cat "$tmp/ldd")"
  grep -q "not found" "$tmp/ldd" && fail "$f: a library is not found: $(grep 'not found' "$tmp/ldd")"
  grep -q "$build" "$tmp/ldd" && fail "$f: refers to the build tree: $(grep "$build" "$tmp/ldd")"
  for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path=$(awk -v l="$lib" '$1 == l && $2 == "=>" {print $3}' "$tmp/ldd" | head -1)
    [ -z "$path" ] && path=$(awk -v l="$lib" 'index($1, l) {print $1}' "$tmp/ldd" | head -1)  # ld-linux
    [ -n "$path" ] || fail "$f: ldd does not resolve $lib"
    case "$path" in "$prefix"/*) continue ;; esac  # shipped in the image itself
    echo "$(basename "$f") $lib $path" >> "$tmp/needed"
  done
done < <(find "$prefix" -type f | sort)

# Pass 2: one dpkg -S for every name each library may have (Debian 12 merges /usr, so dpkg
# knows /lib/x/libc.so.6 where ldd says /lib/x/libc.so.6 or the link resolves into /usr).
names() {
  local p="$1" c
  for c in "$p" "$(readlink -f "$p")"; do
    echo "$c"
    case "$c" in /usr/*) echo "${c#/usr}" ;; *) echo "/usr$c" ;; esac
  done
}
for path in $(awk '{print $3}' "$tmp/needed" | sort -u); do names "$path"; done | sort -u > "$tmp/names"
dpkg -S $(cat "$tmp/names") 2> /dev/null | sed -n 's/^\([^:]*\)\(:[a-z0-9]*\)\{0,1\}: \(.*\)$/\3 \1/p' > "$tmp/owners"
: > "$tmp/needed_pkgs"
while read -r file lib path; do
  pkg=""
  for n in $(names "$path"); do
    pkg=$(awk -v n="$n" '$1 == n {print $2; exit}' "$tmp/owners")
    [ -n "$pkg" ] && break
  done
  [ -n "$pkg" ] || fail "$file: no Debian package ships $path ($lib)"
  echo "  $file: $lib -> $pkg"
  echo "$pkg" >> "$tmp/needed_pkgs"
done < "$tmp/needed"
[ "$n_files" -ge 4 ] || fail "expected at least 4 ELF files in the install, found $n_files"
sort -u "$tmp/needed_pkgs" -o "$tmp/needed_pkgs"

awk '/^# Runtime packages/ {on = 1; next} /^# End of runtime packages/ {on = 0} on' "$dockerfile" |
  sed -n 's/^[[:space:]]\{1,\}\([a-z0-9][a-z0-9.+-]*\)[[:space:]]*\\$/\1/p' | sort > "$tmp/listed"
[ -s "$tmp/listed" ] || fail "no runtime package list found in $dockerfile"
sort -u "$tmp/listed" | cmp -s - "$tmp/listed" || fail "the Dockerfile lists a package twice"

missing=$(comm -23 "$tmp/needed_pkgs" "$tmp/listed" | tr '\n' ' ')
unused=$(comm -13 "$tmp/needed_pkgs" "$tmp/listed" | tr '\n' ' ')
[ -z "$missing" ] || fail "the Dockerfile's runtime list lacks: $missing(needed by the binaries above)"
[ -z "$unused" ] || fail "the Dockerfile's runtime list has packages no binary links: $unused"
echo "ok: $(wc -l < "$tmp/listed") runtime packages = the packages of the libraries $n_files installed ELF files link"
