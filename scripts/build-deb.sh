#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds Portico's Debian package from this working tree:
#
#   scripts/build-deb.sh                 -> build-deb/portico_<version>_<arch>.deb
#   scripts/build-deb.sh --no-lintian    same, without the lintian check
#
# The tree is copied to build-deb/src/portico-<version>/ with packaging/debian placed at debian/
# there (the repository root never gets a debian/ folder), then dpkg-buildpackage builds the
# binary package and lintian checks it (its report: build-deb/lintian.txt; errors fail the
# script). DEB_BUILD_OPTIONS defaults to "nocheck parallel=<cpus>"; set it yourself to run the
# unit tests in the package build, e.g. DEB_BUILD_OPTIONS=parallel=2 scripts/build-deb.sh.
# Needs the packages from `scripts/install-deps.sh package` (build dependencies, debhelper, dpkg-dev,
# lintian); no root.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

run_lintian=1
for arg in "$@"; do
  case "$arg" in
    --no-lintian) run_lintian=0 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

for tool in dpkg-buildpackage dpkg-parsechangelog dh; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool is missing: run scripts/install-deps.sh package" >&2; exit 1; }
done

# The changelog carries the package version; it must match the project's (CMakeLists.txt).
version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
cmake_version=$(sed -n 's/^project([[:space:]]*portico[[:space:]]\{1,\}VERSION[[:space:]]\{1,\}\([0-9.]*\).*/\1/p' CMakeLists.txt)
if [ "${version%%-*}" != "$cmake_version" ]; then
  echo "build-deb.sh: packaging/debian/changelog says $version but CMakeLists.txt says $cmake_version;" >&2
  echo "  add a changelog entry: dch --changelog packaging/debian/changelog -v $cmake_version" >&2
  exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

out="$root/build-deb"
stage="$out/src/portico-$version"
rm -rf "$out/src"
mkdir -p "$stage"
rm -f "$out"/portico_*.deb "$out"/portico-dbgsym_*.*deb "$out"/portico_*.buildinfo "$out"/portico_*.changes \
      "$out/lintian.txt"

# Copy the sources: tracked and new (not ignored) files of the working tree, so local edits are
# packaged as they are; outside git, everything but build output.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$root" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar -C "$root" --null --no-recursion -T - -cf - | tar -C "$stage" -xf -
else
  tar -C "$root" --anchored --exclude=./.git --exclude='./build*' --exclude=./tests/peers/node_modules \
    -cf - . | tar -C "$stage" -xf -
fi
rm -rf "$stage/debian"
cp -a "$root/packaging/debian" "$stage/debian"
rm -rf "$stage/debian/.debhelper"

export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS-nocheck parallel=$(nproc)}"
profiles=()
case " $DEB_BUILD_OPTIONS " in *" nocheck "*) profiles=(-Pnocheck) ;; esac
echo "build-deb.sh: building portico $version ($arch) in $stage with DEB_BUILD_OPTIONS='$DEB_BUILD_OPTIONS'"
(cd "$stage" && dpkg-buildpackage -b -us -uc "${profiles[@]}")

for f in "$out/src/portico_${version}_"* "$out/src/portico-dbgsym_${version}_"*; do
  if [ -e "$f" ]; then mv "$f" "$out/"; fi
done
deb="$out/portico_${version}_${arch}.deb"
[ -f "$deb" ] || { echo "build-deb.sh: $deb was not built" >&2; exit 1; }
rm -rf "$out/src"

if [ "$run_lintian" = 1 ]; then
  if command -v lintian >/dev/null; then
    echo "build-deb.sh: lintian $deb"
    status=0
    lintian --fail-on error --display-info "$deb" >"$out/lintian.txt" 2>&1 || status=$?
    cat "$out/lintian.txt"
    if [ "$status" != 0 ]; then
      echo "build-deb.sh: lintian reports errors (build-deb/lintian.txt)" >&2
      exit 1
    fi
  else
    echo "build-deb.sh: lintian is not installed; skipping the check" >&2
  fi
fi

echo "$deb"
