#!/bin/sh
# test_symbols.sh: libcnnlab.so exports exactly the public API: the dynamic symbols
# it defines (nm -D --defined-only) are the cl_ functions declared in
# include/cnnlab.h, every one of those declarations is marked CL_API, the soname
# carries the major version of CNNLAB_VERSION, and `cnnlab --version` shows that
# version. Prints "ok - NAME" or "FAIL - NAME: ..." per check and one
# "N passed, N failed" line.
#   BUILD=build sh tests/test_symbols.sh
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp symbols

version=$(sed -n 's/^#define CNNLAB_VERSION "\([0-9.]*\)"$/\1/p' include/cnnlab.h)
lib=$BUILD/libcnnlab.so.$version
if [ -z "$version" ]; then
    fail "CNNLAB_VERSION \"MAJOR.MINOR.PATCH\" not found in include/cnnlab.h"
elif [ ! -f "$lib" ]; then
    fail "$lib not built (make shared)"
else
    # Every function declaration of the header, comments removed: the identifier
    # before each "(" that starts with cl_.
    ${CC:-cc} -fpreprocessed -dD -E -P include/cnnlab.h 2>/dev/null | tr '\n' ' ' | tr ';' '\n' |
        grep -E '[^a-z0-9_]cl_[a-z0-9_]+ *\(' >"$tmp/decls"
    sed -E 's/^[^(]*[^a-z0-9_](cl_[a-z0-9_]+) *\(.*/\1/' "$tmp/decls" | sort -u >"$tmp/declared"
    nm -D --defined-only "$lib" | awk '{ print $NF }' | sort -u >"$tmp/exported"
    ndecl=$(wc -l <"$tmp/declared")
    if [ "$ndecl" -lt 50 ]; then
        fail "found only $ndecl declarations in include/cnnlab.h"
    elif cmp -s "$tmp/declared" "$tmp/exported"; then
        ok "libcnnlab.so exports exactly the $ndecl cl_ functions of include/cnnlab.h"
    else
        fail "exported symbols differ from include/cnnlab.h's declarations:"
        comm -13 "$tmp/declared" "$tmp/exported" | sed 's/^/    exported but not declared: /' | head -20
        comm -23 "$tmp/declared" "$tmp/exported" | sed 's/^/    declared but not exported (mark it CL_API): /' | head -20
    fi
    unmarked=$(grep -cv 'CL_API' "$tmp/decls")
    if [ "$unmarked" -eq 0 ]; then
        ok "every declaration is marked CL_API"
    else
        fail "$unmarked declarations lack CL_API:"
        grep -v 'CL_API' "$tmp/decls" | sed 's/^ */    /' | head -10
    fi
    soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    if [ "$soname" = "libcnnlab.so.${version%%.*}" ] && [ -L "$BUILD/$soname" ] &&
        [ "$(readlink "$BUILD/libcnnlab.so")" = "$soname" ]; then
        ok "soname $soname, with the soname and development links"
    else
        fail "soname '$soname' (expected libcnnlab.so.${version%%.*}) or its links in $BUILD"
    fi
    if readelf -d "$lib" | grep -q 'NEEDED.*libcairo\|NEEDED.*libcurl'; then
        fail "libcnnlab.so links the CLI's libraries (cairo, curl)"
    else
        ok "libcnnlab.so links only what the library uses"
    fi
fi
if [ "$("$BUILD/cnnlab" --version)" = "cnnlab $version" ]; then
    ok "cnnlab --version shows $version"
else
    fail "cnnlab --version shows '$("$BUILD/cnnlab" --version)', expected 'cnnlab $version'"
fi
finish
