#!/bin/sh
# test_install.sh: `make install DESTDIR=$tmp PREFIX=/usr` puts every file where the GNU
# conventions say; the README's C example (the first C block of "The C library")
# builds with `pkg-config --cflags --libs cnnlab` against the installed shared
# library, runs with LD_LIBRARY_PATH, and its loss falls; the same example links the
# static library with `pkg-config --static`; the installed cnnlab runs `summary` on an
# installed model; `man -l` renders the page without warnings; bash loads the
# completion; `make uninstall` leaves no file behind. Prints "ok - NAME" or
# "FAIL - NAME: ..." per check and one "N passed, N failed" line. Skipped under
# CNNLAB_QUICK (the sanitized and portable passes).
#   BUILD=build sh tests/test_install.sh
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
[ -z "$CNNLAB_QUICK" ] || skip_all install "CNNLAB_QUICK; the default build runs it"
make_tmp install
root=$tmp/root
# show FILE: the first lines of a log, indented, after a failure.

version=$(sed -n 's/^#define CNNLAB_VERSION "\([0-9.]*\)"$/\1/p' include/cnnlab.h)
major=${version%%.*}

# -- install ---------------------------------------------------------------------------
if ${MAKE:-make} --no-print-directory BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr install >"$tmp/install.log" 2>&1; then
    ok "make install DESTDIR=... PREFIX=/usr"
else
    fail "make install failed:"; tail -n 15 "$tmp/install.log" | sed 's/^/    /'
    finish
fi
missing=
for f in usr/bin/cnnlab usr/lib/libcnnlab.so.$version usr/lib/libcnnlab.a usr/include/cnnlab.h \
    usr/lib/pkgconfig/cnnlab.pc usr/share/man/man1/cnnlab.1 usr/share/bash-completion/completions/cnnlab; do
    [ -f "$root/$f" ] || missing="$missing $f"
done
for m in models/*.net; do
    cmp -s "$m" "$root/usr/share/cnnlab/models/${m#models/}" || missing="$missing usr/share/cnnlab/models/${m#models/}"
done
[ "$(readlink "$root/usr/lib/libcnnlab.so.$major")" = "libcnnlab.so.$version" ] || missing="$missing libcnnlab.so.$major->"
[ "$(readlink "$root/usr/lib/libcnnlab.so")" = "libcnnlab.so.$major" ] || missing="$missing libcnnlab.so->"
[ -x "$root/usr/bin/cnnlab" ] || missing="$missing (usr/bin/cnnlab not executable)"
if [ -z "$missing" ]; then
    ok "installed: binary, libcnnlab.so.$version with its soname and dev links, .a, header, .pc, man page, completion, models"
else
    fail "not installed as expected:$missing"
fi

# -- pkg-config and the README's C example ------------------------------------------------
# pkg-config looks in the DESTDIR tree first and prefixes its paths with DESTDIR.
pc() {
    PKG_CONFIG_PATH="$root/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
        PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config "$@"
}
if [ "$(pc --modversion cnnlab 2>&1)" = "$version" ] && pc --cflags --libs cnnlab | grep -q -- "-I$root/usr/include"; then
    ok "pkg-config finds cnnlab $version: $(pc --cflags --libs cnnlab)"
else
    fail "pkg-config: '$(pc --modversion cnnlab 2>&1)', '$(pc --cflags --libs cnnlab 2>&1)'"
fi

awk '/^## The C library/ { in_section = 1 } in_section && /^```c$/ { grab = 1; next }
     grab && /^```$/ { exit } grab { print }' README.md >"$tmp/example.c"
if ! grep -q 'main(' "$tmp/example.c"; then
    fail "no C program found in README.md's \"The C library\" section"
    finish
fi

# loss_falls LOG: the example prints "step N: loss L" lines; the last loss must be
# under 0.7 times the first.
loss_falls() {
    awk '/^step [0-9]+: loss / { l = $NF; if (first == "") first = l; last = l; n++ }
         END { exit !(n >= 2 && last < 0.7 * first) }' "$1"
}

# shellcheck disable=SC2046 # pkg-config's words are separate arguments
if ${CC:-cc} -std=c11 -Wall -Wextra -Werror -O2 "$tmp/example.c" -o "$tmp/example_shared" \
    $(pc --cflags --libs cnnlab) >"$tmp/cc.log" 2>&1; then
    ok "README example compiles with pkg-config --cflags --libs cnnlab"
else
    fail "README example does not compile:"; show "$tmp/cc.log"
fi
if [ -x "$tmp/example_shared" ]; then
    if readelf -d "$tmp/example_shared" | grep -q "NEEDED.*\[libcnnlab.so.$major\]" &&
        LD_LIBRARY_PATH="$root/usr/lib" ldd "$tmp/example_shared" | grep -q "libcnnlab.so.$major => $root/usr/lib/"; then
        ok "example linked to the installed libcnnlab.so.$major"
    else
        fail "example not linked to $root/usr/lib/libcnnlab.so.$major:"
        LD_LIBRARY_PATH="$root/usr/lib" ldd "$tmp/example_shared" | sed 's/^/    /'
    fi
    if LD_LIBRARY_PATH="$root/usr/lib" "$tmp/example_shared" >"$tmp/run.log" 2>&1 && loss_falls "$tmp/run.log"; then
        ok "README example trains with the shared library: $(head -n 1 "$tmp/run.log") ... $(tail -n 1 "$tmp/run.log")"
    else
        fail "README example with the shared library: the loss did not fall (or it failed):"; show "$tmp/run.log"
    fi
fi

# The static library: a folder holding only libcnnlab.a comes first, so -lcnnlab finds
# the archive, and Libs.private / Requires.private must supply its dependencies.
mkdir -p "$tmp/static" && cp "$root/usr/lib/libcnnlab.a" "$tmp/static/"
# shellcheck disable=SC2046
if ${CC:-cc} -std=c11 -O2 "$tmp/example.c" -o "$tmp/example_static" -L"$tmp/static" \
    $(pc --static --cflags --libs cnnlab) >"$tmp/cc.log" 2>&1 &&
    ! readelf -d "$tmp/example_static" | grep -q 'NEEDED.*libcnnlab' &&
    "$tmp/example_static" >"$tmp/run.log" 2>&1 && loss_falls "$tmp/run.log"; then
    ok "README example links libcnnlab.a with pkg-config --static and trains"
else
    fail "static link with pkg-config --static --libs cnnlab:"; show "$tmp/cc.log"; show "$tmp/run.log"
fi

# -- the installed program ---------------------------------------------------------------
if [ "$("$root/usr/bin/cnnlab" --version 2>&1)" = "cnnlab $version" ]; then
    ok "installed cnnlab --version: cnnlab $version"
else
    fail "installed cnnlab --version: $("$root/usr/bin/cnnlab" --version 2>&1)"
fi
model=$root/usr/share/cnnlab/models/mnist.net
if (cd "$tmp" && "$root/usr/bin/cnnlab" summary "$model") >"$tmp/summary.log" 2>&1 &&
    grep -q '^Trainable params: ' "$tmp/summary.log"; then
    ok "installed cnnlab summary on the installed mnist.net: $(grep '^Trainable params: ' "$tmp/summary.log")"
else
    fail "installed cnnlab summary $model:"; show "$tmp/summary.log"
fi

# -- man page and completion ---------------------------------------------------------------
page=$root/usr/share/man/man1/cnnlab.1
if command -v man >/dev/null 2>&1; then
    # lintian's check: groff's warnings on stderr, none allowed.
    LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" \
        >"$tmp/man.out" 2>"$tmp/man.err"
    if ! head -n 5 "$page" | grep -q '^\.TH CNNLAB 1'; then
        fail "cnnlab.1 is not a manual page (no .TH CNNLAB 1 line):"; show "$page" 5
    elif [ ! -s "$tmp/man.err" ] && grep -q 'cnnlab' "$tmp/man.out"; then
        ok "man -l renders cnnlab.1 without warnings"
    else
        fail "man -l cnnlab.1:"; show "$tmp/man.err"
    fi
else
    ok "man -l (skipped: man-db not installed)"
fi
if bash -c ". '$root/usr/share/bash-completion/completions/cnnlab' && complete -p cnnlab" >"$tmp/comp.log" 2>&1; then
    ok "bash loads the completion: $(cat "$tmp/comp.log")"
else
    fail "bash completion:"; show "$tmp/comp.log"
fi

# -- uninstall -----------------------------------------------------------------------------------
if ${MAKE:-make} --no-print-directory BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr uninstall >"$tmp/uninstall.log" 2>&1; then
    left=$(find "$root" ! -type d)
    if [ -z "$left" ]; then
        ok "make uninstall leaves no files"
    else
        fail "make uninstall left:"; echo "$left" | sed 's/^/    /' | head
    fi
else
    fail "make uninstall failed:"; show "$tmp/uninstall.log"
fi
finish
