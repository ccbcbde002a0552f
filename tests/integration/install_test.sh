#!/usr/bin/env bash
# Installs Handoff from a build tree into a temporary prefix, then builds and
# runs worker/examples/out-of-tree against it the way a user would: through
# pkg-config, with CMake and with plain make, without LD_LIBRARY_PATH.
#
#   tests/integration/install_test.sh [BUILD_DIR]
#
# BUILD_DIR (else $HANDOFF_BUILD_DIR, else ./build) must be a built tree.
# Prints PASS and exits 0, or names the first failure and exits 1. Leaves
# nothing behind.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-${HANDOFF_BUILD_DIR:-build}}

fail() {
    echo "install_test: FAIL: $*" >&2
    exit 1
}

# fail_log LOG MESSAGE: shows the end of LOG, then fails.
fail_log() {
    local log=$1

    shift
    tail -n 40 "$log" | sed 's/^/    /' >&2
    fail "$@"
}

# The file a path finally points to, so that prefix/lib/pkgconfig/../../lib
# and prefix/lib compare equal.
real() {
    readlink -f -- "$1"
}

[[ -f $build/CMakeCache.txt ]] ||
    fail "$build is not a Handoff build tree; build one, or pass its path" \
        "as \$1 or HANDOFF_BUILD_DIR"
build=$(cd "$build" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/handoff-install-test.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
prefix=$tmp/prefix

echo "install_test: installing $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    fail_log "$tmp/install.log" "cmake --install failed (is $build built?)"

# What a user's build needs: the header, the library and handoff.pc. The
# library directory is lib or lib/<multiarch> (GNUInstallDirs): find it
# through the .pc file, which sits in <libdir>/pkgconfig.
[[ -f $prefix/include/handoff.h ]] || fail "no include/handoff.h in $prefix"
pc=$(find "$prefix" -path '*/pkgconfig/handoff.pc' | head -n 1)
[[ -n $pc ]] || fail "no <libdir>/pkgconfig/handoff.pc in $prefix"
libdir=$(dirname "$(dirname "$pc")")
[[ -e $libdir/libhandoff.so ]] || fail "no libhandoff.so in $libdir"
compgen -G "$libdir/libhandoff.so.[0-9]*" >/dev/null ||
    fail "no versioned libhandoff.so.N in $libdir"

PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
unset LD_LIBRARY_PATH

# handoff.pc must describe where it was installed, not the prefix the build
# was configured with: `cmake --install --prefix` moves the files only.
pc_includedir=$(pkg-config --variable=includedir handoff) ||
    fail "pkg-config cannot read $pc"
pc_libdir=$(pkg-config --variable=libdir handoff)
[[ $(real "$pc_includedir") == $(real "$prefix/include") &&
    $(real "$pc_libdir") == $(real "$libdir") ]] ||
    fail "$pc points at includedir=$pc_includedir libdir=$pc_libdir," \
        "not into $prefix where it was installed; make handoff.pc" \
        "relocatable (prefix=\${pcfiledir}/../..) or generate it at" \
        "install time"

# A library built with sanitizers needs them in the program that loads it
# (the ASan runtime must come first): a user's build would add them too.
sanitize=$(sed -n 's/^HANDOFF_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt" \
    2>/dev/null || true)
if [[ -n $sanitize ]]; then
    export CFLAGS="-O1 -g -fsanitize=$sanitize -fno-omit-frame-pointer"
    export LDFLAGS="-fsanitize=$sanitize"
    echo "install_test: the build uses -fsanitize=$sanitize; so does my-worker"
fi

# Build in a copy: make writes its objects next to the sources.
cp -R "$src/worker/examples/out-of-tree" "$tmp/src"

echo "install_test: building my-worker with CMake"
cmake -S "$tmp/src" -B "$tmp/build" >"$tmp/configure.log" 2>&1 ||
    fail_log "$tmp/configure.log" "configuring the out-of-tree worker failed"
cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 ||
    fail_log "$tmp/build.log" "building the out-of-tree worker failed"

# check_worker BINARY: runs it as a user would and checks what it says.
check_worker() {
    local worker=$1
    local lib
    local rc=0

    [[ -x $worker ]] || fail "$worker was not built"
    # The binary's RPATH, not the environment, must find the installed
    # library (and not some other copy).
    lib=$(ldd "$worker" | awk '$1 ~ /^libhandoff\.so/ { print $3 }')
    [[ -n $lib && $lib != "not" ]] ||
        fail "$worker does not find libhandoff.so without LD_LIBRARY_PATH"
    [[ $(real "$lib") == $(real "$libdir/libhandoff.so") ]] ||
        fail "$worker loads $lib, not the library installed in $libdir"

    "$worker" list >"$tmp/list.log" 2>&1 || rc=$?
    [[ $rc -eq 0 ]] ||
        fail_log "$tmp/list.log" "$worker list exited with $rc, want 0"
    for want in 'smoke (namespace my-team, 3 tests)' \
        test_greeting_is_formatted test_tempdir_keeps_what_is_written \
        test_environment_defaults_to_local; do
        grep -qF -- "$want" "$tmp/list.log" ||
            fail_log "$tmp/list.log" "$worker list does not show \"$want\""
    done

    rc=0
    "$worker" run smoke >"$tmp/run.log" 2>&1 || rc=$?
    [[ $rc -eq 0 ]] ||
        fail_log "$tmp/run.log" "$worker run smoke exited with $rc, want 0"
    grep -Eq '^ok[[:space:]]+my-team/smoke([[:space:]]|$)' "$tmp/run.log" ||
        fail_log "$tmp/run.log" "$worker run smoke printed no ok line"

    rc=0
    "$worker" run no-such-suite >"$tmp/usage.log" 2>&1 || rc=$?
    [[ $rc -eq 2 ]] ||
        fail_log "$tmp/usage.log" "$worker run no-such-suite exited" \
            "with $rc, want 2 (usage error)"
}

check_worker "$tmp/build/my-worker"

if command -v make >/dev/null; then
    echo "install_test: building my-worker with make"
    make -C "$tmp/src" >"$tmp/make.log" 2>&1 ||
        fail_log "$tmp/make.log" "building with the example Makefile failed"
    check_worker "$tmp/src/my-worker"
fi

echo "install_test: PASS"
