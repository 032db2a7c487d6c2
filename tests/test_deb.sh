#!/bin/sh
# test_deb.sh: the Debian packages. `make deb` builds them with dpkg-buildpackage -us
# -uc -b from a copy of the working tree (tracked and untracked, not ignored, files);
# then: the version in debian/changelog is CNNLAB_VERSION; the three .debs exist and
# hold what they should; lintian reports no errors (its warnings and infos are
# printed); the packages, unpacked with dpkg-deb -x into a temporary folder (nothing
# is installed), give a cnnlab that runs --version and summary on a shipped model,
# and a library that pkg-config finds and the README's C example links and runs with.
# Prints "ok - NAME" or "FAIL - NAME: ..." per check and one "N passed, N failed" line.
# Skipped under CNNLAB_QUICK (the sanitized and portable passes) and without
# dpkg-buildpackage (.ci/packages-test installs it).
#   BUILD=build sh tests/test_deb.sh
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
skip() { skip_all "Debian packages" "$1"; }
[ -z "$CNNLAB_QUICK" ] || skip "CNNLAB_QUICK; the default build runs it"
command -v dpkg-buildpackage >/dev/null 2>&1 && command -v dh >/dev/null 2>&1 ||
    skip "no dpkg-buildpackage or debhelper: apt-get install \$(cat .ci/packages-test)"
make_tmp deb

version=$(sed -n 's/^#define CNNLAB_VERSION "\([0-9.]*\)"$/\1/p' include/cnnlab.h)
major=${version%%.*}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
changelog_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$changelog_version" = "$version" ]; then
    ok "debian/changelog's version is CNNLAB_VERSION ($version)"
else
    fail "debian/changelog says $changelog_version, include/cnnlab.h says $version"
fi

# -- build (the Makefile's deb target; MAKEFLAGS of an outer make must not leak in) ----
out=$tmp/b/deb
if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory BUILD="$tmp/b" deb >"$tmp/build.log" 2>&1; then
    ok "dpkg-buildpackage -us -uc -b"
else
    fail "dpkg-buildpackage failed:"; tail -n 25 "$tmp/build.log" | sed 's/^/    /'
    finish
fi
changes=$out/cnnlab_${version}_$arch.changes
missing=
for p in cnnlab libcnnlab$major libcnnlab-dev; do
    [ -f "$out/${p}_${version}_$arch.deb" ] || missing="$missing ${p}_${version}_$arch.deb"
done
[ -f "$changes" ] || missing="$missing ${changes##*/}"
if [ -z "$missing" ]; then
    ok "built cnnlab, libcnnlab$major and libcnnlab-dev ${version}_$arch.deb and the .changes"
else
    fail "missing:$missing"; ls "$out" | sed 's/^/    /'
    finish
fi

# -- contents ------------------------------------------------------------------------
# contains DEB PATH...: every PATH is in the package.
contains() {
    deb=$1
    shift
    dpkg-deb -c "$out/${deb}_${version}_$arch.deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$tmp/list"
    for f in "$@"; do
        grep -qx "$f" "$tmp/list" || { fail "$deb lacks $f"; return; }
    done
    ok "$deb holds $*"
}
contains cnnlab /usr/bin/cnnlab /usr/share/man/man1/cnnlab.1.gz \
    /usr/share/bash-completion/completions/cnnlab /usr/share/cnnlab/models/mnist.net
contains "libcnnlab$major" "/usr/lib/$multiarch/libcnnlab.so.$version" "/usr/lib/$multiarch/libcnnlab.so.$major"
contains libcnnlab-dev /usr/include/cnnlab.h "/usr/lib/$multiarch/libcnnlab.a" \
    "/usr/lib/$multiarch/libcnnlab.so" "/usr/lib/$multiarch/pkgconfig/cnnlab.pc"

# -- lintian -------------------------------------------------------------------------------
if command -v lintian >/dev/null 2>&1; then
    lintian --info --display-info --pedantic "$changes" >"$tmp/lintian.log" 2>&1
    errors=$(grep -c '^E: ' "$tmp/lintian.log")
    warnings=$(grep -c '^W: ' "$tmp/lintian.log")
    if [ "$errors" -eq 0 ]; then
        ok "lintian: no errors, $warnings warnings"
    else
        fail "lintian: $errors errors, $warnings warnings"
    fi
    # Every remark, for the reader (errors, warnings, infos, pedantic notes).
    grep -E '^[EWIP]: ' "$tmp/lintian.log" | sed 's/^/    lintian /'
else
    ok "lintian (skipped: not installed)"
fi

# -- the unpacked packages -------------------------------------------------------------------
root=$tmp/root
for deb in "$out"/*.deb; do dpkg-deb -x "$deb" "$root"; done
if [ "$("$root/usr/bin/cnnlab" --version 2>&1)" = "cnnlab $version" ]; then
    ok "packaged cnnlab --version: cnnlab $version"
else
    fail "packaged cnnlab --version: $("$root/usr/bin/cnnlab" --version 2>&1)"
fi
if (cd "$tmp" && "$root/usr/bin/cnnlab" summary "$root/usr/share/cnnlab/models/mnist.net") >"$tmp/summary.log" 2>&1 &&
    grep -q '^Trainable params: ' "$tmp/summary.log"; then
    ok "packaged cnnlab summary mnist.net: $(grep '^Trainable params: ' "$tmp/summary.log")"
else
    fail "packaged cnnlab summary:"; show "$tmp/summary.log"
fi
pc() {
    PKG_CONFIG_PATH="$root/usr/lib/$multiarch/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
        PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config "$@"
}
awk '/^## The C library/ { in_section = 1 } in_section && /^```c$/ { grab = 1; next }
     grab && /^```$/ { exit } grab { print }' README.md >"$tmp/example.c"
# shellcheck disable=SC2046 # pkg-config's words are separate arguments
if [ "$(pc --modversion cnnlab 2>&1)" = "$version" ] &&
    ${CC:-cc} -std=c11 -O2 "$tmp/example.c" -o "$tmp/example" $(pc --cflags --libs cnnlab) >"$tmp/cc.log" 2>&1 &&
    LD_LIBRARY_PATH="$root/usr/lib/$multiarch" "$tmp/example" >"$tmp/run.log" 2>&1 &&
    awk '/^step [0-9]+: loss / { l = $NF; if (first == "") first = l; last = l; n++ }
         END { exit !(n >= 2 && last < 0.7 * first) }' "$tmp/run.log"; then
    ok "libcnnlab-dev's cnnlab.pc builds the README example; it trains on libcnnlab$major: $(tail -n 1 "$tmp/run.log")"
else
    fail "README example against the packaged library:"; show "$tmp/cc.log"; show "$tmp/run.log"
fi
finish
