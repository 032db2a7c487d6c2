#!/usr/bin/python3
"""package-sizes.py: the installed size of each package list, for the README.

For each list given (default .ci/packages, then .ci/packages-test), the packages its
Depends/Pre-Depends closure adds (recommends left out, as .ci/run installs) beyond a
minimal Debian (the Essential and Priority: required packages and apt) and beyond the
lists before it, and the sum of their Installed-Size. Reads the packages installed on
this machine (apt-cache depends --installed, dpkg-query), so run it where both lists
are installed.
    python3 .ci/package-sizes.py [LIST...]
"""
import subprocess
import sys


def closure(pkgs):
    out = subprocess.run(
        ['apt-cache', 'depends', '--recurse', '--installed', '--no-recommends', '--no-suggests',
         '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances'] + pkgs,
        capture_output=True, text=True, check=True).stdout
    return {line.split(':')[0] for line in out.splitlines()
            if line and not line[0].isspace() and not line.startswith('<')}


def size_kib(pkg):
    out = subprocess.run(['dpkg-query', '-Wf', '${Installed-Size}', pkg],
                         capture_output=True, text=True).stdout
    return int(out or 0)


def main():
    lists = sys.argv[1:] or ['.ci/packages', '.ci/packages-test']
    status = subprocess.run(['dpkg-query', '-Wf', '${Package} ${Priority} ${Essential}\n'],
                            capture_output=True, text=True, check=True).stdout
    minimal = [f.split()[0] for f in status.splitlines()
               if f.split()[1:2] == ['required'] or f.endswith(' yes')] + ['apt']
    seen = closure(minimal)
    for path in lists:
        with open(path) as f:
            added = closure(f.read().split()) - seen
        print(f'{path}: {len(added)} packages, {sum(map(size_kib, added)) / 1024:.0f} MiB installed')
        seen |= added


if __name__ == '__main__':
    main()
