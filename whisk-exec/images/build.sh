#!/bin/sh
# Builds whisk's runtime images on the local Docker daemon, with no registry: a root file
# system holding this machine's `node` (with the shared libraries it loads), a static busybox
# (for `sh` and `unzip`) and whisk's Node.js launcher is imported, then `docker build` adds the
# runtime settings. Images:
#   openwhisk/action-nodejs-v20:nightly  the `nodejs:20` kind (the name OpenWhisk's manifest uses)
#   whisk/blackbox-echo:1                 a custom image speaking the runtime protocol (tests)
#   whisk/blackbox-silent:1               a custom image that never opens its port (tests)
# Usage: build.sh [--force]   (skips images that exist unless --force)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
launchers="$here/../runtimes"
force=${1:-}
export DOCKER_BUILDKIT=0   # the legacy builder: no buildx here

exists() { [ -z "$force" ] && docker image inspect "$1" >/dev/null 2>&1; }

if exists openwhisk/action-nodejs-v20:nightly && exists whisk/blackbox-echo:1 &&
    exists whisk/blackbox-silent:1; then
    echo "runtime images present"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/bin" "$root/usr/bin" "$root/tmp" "$root/runtime" "$root/etc"
chmod 1777 "$root/tmp"

# A program and every shared library it loads, at the same paths.
copy_with_libs() {
    cp -L "$1" "$root$1"
    ldd "$1" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}
copy_with_libs "$(command -v node)"
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in sh sleep unzip; do ln -s busybox "$root/bin/$applet"; done
cp "$launchers/nodejs/launcher.js" "$root/runtime/launcher.js"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"

tar -C "$root" -c . | docker import - whisk/rootfs-nodejs:build >/dev/null
docker build -q -t openwhisk/action-nodejs-v20:nightly "$here/nodejs" >/dev/null
docker build -q -t whisk/blackbox-echo:1 "$here/blackbox-echo" >/dev/null
docker build -q -t whisk/blackbox-silent:1 "$here/blackbox-silent" >/dev/null
docker rmi whisk/rootfs-nodejs:build >/dev/null
docker image prune -f >/dev/null   # earlier builds replaced by --force
echo "built openwhisk/action-nodejs-v20:nightly whisk/blackbox-echo:1 whisk/blackbox-silent:1"
