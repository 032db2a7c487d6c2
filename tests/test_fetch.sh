#!/bin/sh
# test_fetch.sh: `cnnlab fetch` against a local HTTP server (python3 -m http.server on
# 127.0.0.1) serving a tiny fake CIFAR-10 archive and tiny gzipped IDX files, with the
# testing aids CNNLAB_FETCH_BASE_URL and CNNLAB_FETCH_CHECKSUMS: a fetch unpacks, a
# second one finds the files present, a checksum mismatch, a 404 and a closed port
# fail with exit 1 and say what to put where, leaving nothing behind, archives with
# "..", absolute or link entries are refused, and an archive put in the data folder by
# hand is unpacked without a server. Prints "ok - NAME" or "FAIL - NAME: ..." per
# check and one "N passed, N failed" line. Without python3 it skips (and passes).
#   BUILD=build sh tests/test_fetch.sh
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh

command -v python3 >/dev/null 2>&1 || skip_all fetch "no python3"

make_tmp fetch
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

# Nothing from the caller's environment may redirect the test.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY CNNLAB_DATA \
    CNNLAB_FETCH_BASE_URL CNNLAB_FETCH_CHECKSUMS
# limited COMMAND...: COMMAND under a time limit where coreutils' timeout exists, so
# that a hanging server or download cannot hang the test.
limited() {
    if command -v timeout >/dev/null 2>&1; then timeout 60 "$@"; else "$@"; fi
}

# saw NAME PATTERN: the output of the last check has a line matching PATTERN.
saw() {
    if grep -qE -- "$2" "$tmp/out"; then
        ok "$1"
    else
        fail "$1" "no line matches '$2'"; show "$tmp/out" 8
    fi
}

# not_in_output PATTERN: no line of the last check's output matches PATTERN.
not_in_output() { ! grep -qE -- "$1" "$tmp/out"; }

# expect NAME WHAT -- COMMAND...: passes when COMMAND succeeds; else WHAT is the failure.
expect() {
    name=$1 what=$2
    shift 3
    if "$@" >/dev/null 2>&1; then ok "$name"; else fail "$name" "$what"; fi
}

# fetch ARGS...: cnnlab fetch with the current $base and $sums.
fetch() {
    limited env CNNLAB_FETCH_BASE_URL="$base" CNNLAB_FETCH_CHECKSUMS="$sums" "$CNNLAB" fetch "$@"
}

# same_files DIR_A DIR_B NAME...: the files are identical in both folders.
same_files() {
    a=$1 b=$2
    shift 2
    for f in "$@"; do cmp -s "$a/$f" "$b/$f" || return 1; done
}

# nothing_in DIR: DIR holds no file or folder at all.
nothing_in() { [ -z "$(find "$1" -mindepth 1 2>/dev/null)" ]; }

# leftovers DIR: DIR holds no temporary download or staging folder.
no_leftovers() { [ -z "$(find "$1" -name '*.part-*' -o -name '.cnnlab-unpack-*')" ]; }

# extra_in TOP: what TOP holds besides a/d/cifar-10-binary.tar.gz (and what the bad
# archives aim at outside it); only_archive TOP: nothing.
extra_in() {
    find "$1" -mindepth 1 ! -path "$1/a" ! -path "$1/a/d" ! -path "$1/a/d/cifar-10-binary.tar.gz"
    [ -e "$tmp/evil.txt" ] && echo "$tmp/evil.txt"
    [ -e "$tmp/absolute-evil.txt" ] && echo "$tmp/absolute-evil.txt"
}
only_archive() { [ -z "$(extra_in "$1")" ]; }

# ---- the server, started first (python3 is slow to start): port 0 lets the system
# pick a free port, which it prints on its first line ----

mkdir -p "$tmp/srv/mnist" "$tmp/src" "$tmp/bad" || exit 2
# (Started directly, not through limited(), so that $! is the process to kill.)
if command -v timeout >/dev/null 2>&1; then
    timeout 300 python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$tmp/srv" >"$tmp/server.log" 2>&1 &
else
    python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$tmp/srv" >"$tmp/server.log" 2>&1 &
fi
server_pid=$!

# ---- fixtures: a tiny CIFAR-10 archive, tiny IDX files, bad archives ----

cifar_files="data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin batches.meta.txt"
idx_files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
if ! python3 - "$tmp" <<'EOF'
import gzip, hashlib, io, os, socket, struct, sys, tarfile
tmp = sys.argv[1]
src = os.path.join(tmp, "src", "cifar-10-batches-bin")
os.makedirs(src)
names = ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]
for b, name in enumerate(names):
    with open(os.path.join(src, name), "wb") as f:
        for r in range(3):  # 3 records: a label byte, 3x32x32 pixels
            f.write(bytes([(b + r) % 10]) + bytes((b * 7 + r * 13 + i) % 256 for i in range(3072)))
with open(os.path.join(src, "batches.meta.txt"), "w") as f:
    f.write("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n")

def tar(path, extra=()):
    with tarfile.open(path, "w:gz") as t:
        t.add(src, arcname="cifar-10-batches-bin")
        for info, data in extra:
            t.addfile(info, io.BytesIO(data) if data is not None else None)

def entry(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    return info, (data if kind == tarfile.REGTYPE else None)

tar(os.path.join(tmp, "srv", "cifar-10-binary.tar.gz"))
tar(os.path.join(tmp, "bad", "dotdot.tar.gz"), [entry("cifar-10-batches-bin/../../../evil.txt", b"x")])
tar(os.path.join(tmp, "bad", "absolute.tar.gz"), [entry(os.path.join(tmp, "absolute-evil.txt"), b"x")])
tar(os.path.join(tmp, "bad", "symlink.tar.gz"),
    [entry("cifar-10-batches-bin/escape", kind=tarfile.SYMTYPE, link=tmp)])

def idx(path, magic, dims, data):
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data)

m = os.path.join(tmp, "srv", "mnist")
for split, n in (("train", 5), ("t10k", 3)):
    idx(os.path.join(m, split + "-images-idx3-ubyte.gz"), 0x803, (n, 28, 28),
        bytes(i % 256 for i in range(n * 784)))
    idx(os.path.join(m, split + "-labels-idx1-ubyte.gz"), 0x801, (n,), bytes(i % 10 for i in range(n)))

# Checksum files as md5sum writes them, the archive's SHA-256, and a port nobody
# listens on (bound by the system, then released). One python3 start: they are slow.
def digest(path, algo="md5"):
    with open(path, "rb") as f:
        return hashlib.new(algo, f.read()).hexdigest()
def write(name, text):
    with open(os.path.join(tmp, name), "w") as f:
        f.write(text)
archive = os.path.join(tmp, "srv", "cifar-10-binary.tar.gz")
idx_names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
idx_lines = "".join("%s  %s\n" % (digest(os.path.join(m, n)), n) for n in idx_names)
write("sums", "# checksums for test_fetch.sh\n%s  cifar-10-binary.tar.gz\n%s" % (digest(archive), idx_lines))
write("sums-bad", "0123456789abcdef0123456789abcdef  cifar-10-binary.tar.gz\n" + idx_lines)
for b in ("dotdot", "absolute", "symlink"):
    write("sums-" + b, "%s  cifar-10-binary.tar.gz\n" % digest(os.path.join(tmp, "bad", b + ".tar.gz")))
write("cifar.md5", digest(archive) + "\n")
write("cifar.sha256", digest(archive, "sha256") + "\n")
s = socket.socket()
s.bind(("127.0.0.1", 0))
write("closed-port", "%d\n" % s.getsockname()[1])
s.close()
EOF
then
    fail "fixtures" "python3 could not write the test archives"
    echo "$passed passed, $failed failed"
    exit 1
fi

cifar_md5=$(cat "$tmp/cifar.md5")
bad_md5=0123456789abcdef0123456789abcdef
closed=$(cat "$tmp/closed-port")
port=
for _ in $(seq 1 150); do
    port=$(sed -n 's/^Serving HTTP on .* port \([0-9][0-9]*\).*/\1/p' "$tmp/server.log")
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    fail "http server" "python3 -m http.server did not start within 15 s"; sed 's/^/    /' "$tmp/server.log"
    echo "$passed passed, $failed failed"
    exit 1
fi
[ "$closed" = "$port" ] && closed=9 # (the discard port; nothing listens there either)

gets() { grep -c "GET /$1 " "$tmp/server.log"; }

# ---- usage ----

base='' sums=
check "fetch --help documents CNNLAB_FETCH_BASE_URL" 0 '^  CNNLAB_FETCH_BASE_URL=URL' -- "$CNNLAB" fetch --help
check "fetch --help documents CNNLAB_FETCH_CHECKSUMS" 0 '^  CNNLAB_FETCH_CHECKSUMS=FILE' -- "$CNNLAB" fetch --help
check "fetch unknown dataset" 2 "unknown dataset 'cifar11': expected cifar10, cifar100, mnist or fashion-mnist" -- \
    "$CNNLAB" fetch cifar11
check "fetch without a dataset" 2 '^usage: cnnlab fetch' -- "$CNNLAB" fetch
sums=$tmp/nope
check "fetch missing checksum file" 1 "CNNLAB_FETCH_CHECKSUMS=$tmp/nope: cannot open it" -- fetch cifar10 --data-dir "$tmp/d0"

# ---- CIFAR-10 from the server ----

base=http://127.0.0.1:$port/ sums=$tmp/sums
check "fetch cifar10 unpacks" 0 "unpacked 7 files into $tmp/d1/cifar-10-batches-bin/" -- fetch cifar10 --data-dir "$tmp/d1"
saw "fetch cifar10 prints the SHA-256" "MD5 $cifar_md5 ok, SHA-256 $(cat "$tmp/cifar.sha256")"
# shellcheck disable=SC2086
expect "fetch cifar10 files are the archive's" "unpacked files differ from the originals" -- \
    same_files "$tmp/src/cifar-10-batches-bin" "$tmp/d1/cifar-10-batches-bin" $cifar_files
expect "fetch cifar10 keeps the verified archive" "no $tmp/d1/cifar-10-binary.tar.gz" -- \
    cmp -s "$tmp/srv/cifar-10-binary.tar.gz" "$tmp/d1/cifar-10-binary.tar.gz"
expect "fetch cifar10 leaves no temporary files" "found $(find "$tmp/d1" -name '*.part-*' -o -name '.cnnlab-unpack-*')" -- \
    no_leftovers "$tmp/d1"
check "fetch cifar10 again: already present" 0 "cifar10: already present in $tmp/d1/cifar-10-batches-bin/" -- \
    fetch cifar10 --data-dir "$tmp/d1"
expect "fetch cifar10 again: no second download" "the server saw $(gets cifar-10-binary.tar.gz) requests" -- \
    test "$(gets cifar-10-binary.tar.gz)" -eq 1
check "fetch cifar10 via CNNLAB_DATA" 0 "already present in $tmp/d1/cifar-10-batches-bin/" -- \
    limited env CNNLAB_DATA="$tmp/d1" CNNLAB_FETCH_BASE_URL="$base" "$CNNLAB" fetch cifar10

# ---- MNIST from the server ----

base=http://127.0.0.1:$port/mnist/
check "fetch mnist" 0 "mnist: ready in $tmp/d1/mnist/" -- fetch mnist --data-dir "$tmp/d1"
# shellcheck disable=SC2086
expect "fetch mnist files stay gzipped and intact" "files in $tmp/d1/mnist differ from the served ones" -- \
    same_files "$tmp/srv/mnist" "$tmp/d1/mnist" $idx_files
check "fetch mnist again: present, MD5 ok" 0 "t10k-labels-idx1-ubyte.gz: present, [0-9]+ bytes, MD5 [0-9a-f]{32} ok" -- \
    fetch mnist --data-dir "$tmp/d1"
expect "fetch mnist again: no second download" "the server saw $(gets mnist/t10k-labels-idx1-ubyte.gz) requests" -- \
    test "$(gets mnist/t10k-labels-idx1-ubyte.gz)" -eq 1

# ---- failures ----

base=http://127.0.0.1:$port/ sums=$tmp/sums-bad
check "checksum mismatch fails, naming the file" 1 "cannot download http://127.0.0.1:$port/cifar-10-binary.tar.gz: checksum mismatch: .* MD5 $cifar_md5, expected $bad_md5" -- \
    fetch cifar10 --data-dir "$tmp/d2"
saw "checksum mismatch says where to put it" "put it at $tmp/d2/cifar-10-binary.tar.gz \(MD5 $bad_md5\)"
expect "checksum mismatch leaves nothing behind" "found $(find "$tmp/d2" -mindepth 1)" -- nothing_in "$tmp/d2"

sums=$tmp/sums
base=http://127.0.0.1:$port/nothing-here/
check "404 fails clearly" 1 "cannot download http://127.0.0.1:$port/nothing-here/cifar-10-binary.tar.gz: the server answered HTTP 404" -- \
    fetch cifar10 --data-dir "$tmp/d3"
expect "404 leaves nothing behind" "found $(find "$tmp/d3" -mindepth 1)" -- nothing_in "$tmp/d3"

base=http://127.0.0.1:$closed/
check "no server: cannot download" 1 "cannot download http://127.0.0.1:$closed/cifar-10-binary.tar.gz: .*(connect|refused)" -- \
    fetch cifar10 --data-dir "$tmp/d4"
saw "no server: says what to put where" "Download http://127.0.0.1:$closed/cifar-10-binary.tar.gz on a machine with internet and put it at $tmp/d4/cifar-10-binary.tar.gz \(MD5 $cifar_md5\), then run \`cnnlab fetch cifar10 --data-dir $tmp/d4\` again, or unpack it so that $tmp/d4/cifar-10-batches-bin/data_batch_1.bin exists"
check "no server: mnist lists every file" 1 "-> $tmp/d4/mnist/t10k-labels-idx1-ubyte.gz \(MD5 [0-9a-f]{32}\)" -- \
    fetch mnist --data-dir "$tmp/d4"

# ---- archives with unsafe entries (placed by hand: the offline path) ----

for b in dotdot absolute symlink; do
    mkdir -p "$tmp/e-$b/a/d" && cp "$tmp/bad/$b.tar.gz" "$tmp/e-$b/a/d/cifar-10-binary.tar.gz"
    sums=$tmp/sums-$b
    case $b in
    dotdot) why="it contains '\.\.'" ;;
    absolute) why="it is an absolute path" ;;
    symlink) why="it is not a plain file or folder" ;;
    esac
    check "archive with a $b entry is refused" 1 "refusing the archive entry .*: $why" -- \
        fetch cifar10 --data-dir "$tmp/e-$b/a/d"
    expect "archive with a $b entry: nothing unpacked" "found $(extra_in "$tmp/e-$b")" -- \
        only_archive "$tmp/e-$b"
done

# ---- offline: files put in the data folder by hand, no server ----

base=http://127.0.0.1:$closed/ sums=$tmp/sums
mkdir -p "$tmp/d5/mnist" && cp "$tmp/srv/cifar-10-binary.tar.gz" "$tmp/d5/" && cp "$tmp/srv/mnist/"*.gz "$tmp/d5/mnist/"
check "offline: archive in DIR is unpacked" 0 "unpacked 7 files into $tmp/d5/cifar-10-batches-bin/" -- \
    fetch cifar10 --data-dir "$tmp/d5"
expect "offline: nothing downloaded" "it tried to download" -- not_in_output 'downloading' 
# shellcheck disable=SC2086
expect "offline: unpacked files are the archive's" "unpacked files differ from the originals" -- \
    same_files "$tmp/src/cifar-10-batches-bin" "$tmp/d5/cifar-10-batches-bin" $cifar_files
check "offline: mnist files in DIR are checked" 0 "mnist: ready in $tmp/d5/mnist/" -- fetch mnist --data-dir "$tmp/d5"

finish
