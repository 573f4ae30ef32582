#!/usr/bin/env bash
# Builds (once) a Debian 13 chroot at $1 with Debian's Blender 4.3 (a GUI build), Xvfb, xdotool and
# imagemagick: the real window scripts/test-gui drives. Needs root and the network (deb.debian.org);
# takes a few minutes and about 1 GB. A finished root is marked with .ready and reused.
set -euo pipefail
root="${1:?usage: setup_root.sh ROOT}"
[ -e "$root/.ready" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test-gui: building the Blender chroot needs root (debootstrap, chroot, mount)" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  apt-get install -y -q debootstrap >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
fi
mkdir -p "$root"
if [ ! -x "$root/usr/bin/apt-get" ]; then
  debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >/dev/null
fi
rm -f "$root/etc/apt/sources.list"
cat > "$root/etc/apt/sources.list.d/debian.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
chroot "$root" apt-get update -q >/dev/null
# Debian's Blender lacks the requests and numpy that official builds bundle: the extension needs both.
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends \
  blender xvfb xdotool imagemagick xauth python3-numpy python3-requests fonts-dejavu-core >/dev/null
touch "$root/.ready"
