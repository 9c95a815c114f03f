#!/bin/bash
# Build the root filesystem of a testkit swarm node and pack it for `docker import`.
#
# This file is the node image RECIPE: its text, together with node-init.sh and the resolved
# package versions, is hashed into the image cache key, so any edit here rebuilds the image.
# No registry is reachable from the lab machine, so the image is made from debootstrap.
#
# Inputs (environment), all set by testkit:
#   WORK      empty scratch directory (rootfs, repack trees)
#   DEBS      the staged .debs (apt-get download of the versions below)
#   VERSIONS  NAME=VERSION lines: TARGET_* (trixie 26.1.5), CURRENT_* (bookworm), HOP_*
#             (forky 28.5.2, the second hop), BUILDX_*/COMPOSE_* (CLI plugins), BROKEN_VERSION
#   INIT      node-init.sh, installed as the sysvinit nodes' init under tini
#   BOOT      node-boot.sh, the entrypoint: provisions a node's flavour, execs its init
#   CE_SCRIPT docker-ce-repo.sh, sourced: builds the docker-ce-shaped repository
#   MIRROR    Debian mirror for debootstrap
#   OUT       output tarball (gzip)
set -euo pipefail

# shellcheck disable=SC1090
. "$VERSIONS"
ROOTFS=$WORK/rootfs
REPO=$ROOTFS/srv/lab-repo
HOP_REPO=$ROOTFS/srv/lab-repo-hop
STATIC=$ROOTFS/srv/lab-static

step() { printf '\n=== [%4ss] %s\n' "$SECONDS" "$*"; }
die() { echo "build-node: $*" >&2; exit 1; }

# deb_of PACKAGE VERSION: the staged .deb (apt-get download names files NAME_VERSION_ARCH.deb).
deb_of() {
    local f
    for f in "$DEBS/$1_$2_"*.deb; do
        [ -f "$f" ] && { echo "$f"; return; }
    done
    die "no staged .deb for $1 $2 in $DEBS"
}

step "debootstrap bookworm (minbase + sshd + docker.io 20.10 + systemd)"
# systemd is in every node (systemd flavours run it as PID 1; sysvinit flavours run tini and
# `service` falls back to /etc/init.d because /run/systemd/system does not exist there).
debootstrap --variant=minbase \
    --include=openssh-server,docker.io,iptables,procps,iproute2,ca-certificates,sudo,tini,systemd,systemd-sysv,dbus \
    bookworm "$ROOTFS" "$MIRROR"

step "check that debootstrap installed the recorded engine versions"
# The staged "current" packages must be the installed ones, or rolling back would not restore
# what the node started with.
for pv in "docker.io=$CURRENT_DOCKER_IO" "containerd=$CURRENT_CONTAINERD" \
          "runc=$CURRENT_RUNC" "tini=$CURRENT_TINI"; do
    got=$(dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -W -f='${Version}' "${pv%%=*}")
    [ "$got" = "${pv#*=}" ] || die "debootstrap installed ${pv%%=*} $got, the recipe recorded ${pv#*=}"
done

step "make /etc/init.d/docker tolerate the container's limits"
# The host's hard limit for open files is 20000 and CAP_SYS_RESOURCE is not available, so
# Debian's `ulimit -n 1048576` and `ulimit -p/-u unlimited` fail and abort the init script.
# The file is a conffile identical in 20.10.24 and 26.1.5, so dpkg keeps this edit silently
# across upgrades and downgrades.
f=$ROOTFS/etc/init.d/docker
sed -i \
    -e 's|^\([[:space:]]*\)ulimit -n 1048576$|\1ulimit -n 1048576 2>/dev/null \|\| ulimit -n "$(ulimit -H -n)" \|\| true|' \
    -e 's|^\([[:space:]]*\)ulimit -u unlimited$|\1ulimit -u unlimited 2>/dev/null \|\| true|' \
    -e 's|^\([[:space:]]*\)ulimit -p unlimited$|\1ulimit -p unlimited 2>/dev/null \|\| true|' \
    "$f"
[ "$(grep -c 'ulimit .*|| true' "$f")" -eq 3 ] || die "unexpected ulimit lines in $f: $(grep -n ulimit "$f")"

step "user upgrader (docker group, passwordless sudo)"
chroot "$ROOTFS" useradd --create-home --shell /bin/bash --groups docker upgrader
# '*': no password, but not a locked account ('!'), which sshd would refuse.
chroot "$ROOTFS" usermod -p '*' upgrader
chroot "$ROOTFS" install -d -m 0700 -o upgrader -g upgrader /home/upgrader/.ssh
printf 'upgrader ALL=(ALL:ALL) NOPASSWD: ALL\n' > "$ROOTFS/etc/sudoers.d/upgrader"
chmod 0440 "$ROOTFS/etc/sudoers.d/upgrader"
# Pristine copy, so that the no-sudo fault can be reversed without testkit knowing the text.
install -D -m 0400 "$ROOTFS/etc/sudoers.d/upgrader" "$ROOTFS/usr/local/share/testkit/sudoers.upgrader"
chroot "$ROOTFS" visudo -c -q

step "sshd: keys only; host keys are generated per node at first start"
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
cat > "$ROOTFS/etc/ssh/sshd_config.d/testkit.conf" <<'EOF'
# testkit lab node
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
# swarm-upgrade may open several connections and multiplexed sessions at once.
MaxStartups 64:30:128
MaxSessions 64
EOF

step "init: testkit-boot, then tini + testkit-init (sysvinit flavours) or systemd"
install -m 0755 "$INIT" "$ROOTFS/usr/local/sbin/testkit-init"
install -m 0755 "$BOOT" "$ROOTFS/usr/local/sbin/testkit-boot"
# A tini of its own: the second hop's docker.io replaces the tini package with tini-static.
cp "$ROOTFS/usr/bin/tini-static" "$ROOTFS/usr/local/sbin/testkit-tini"
# A reboot that is real under tini: systemd-sysv's /sbin/reboot asks systemd, which is not
# PID 1 there. Ending PID 1 ends every process of the node (the PID namespace goes with it),
# and --restart unless-stopped starts the container again: a new boot of the node. Under
# systemd (PID 1) the real reboot runs.
cat > "$ROOTFS/usr/local/sbin/reboot" <<'EOF'
#!/bin/sh
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then exec /sbin/reboot "$@"; fi
exec kill -TERM 1
EOF
chmod 0755 "$ROOTFS/usr/local/sbin/reboot"

step "systemd flavours: host keys at first boot, a ready mark, nothing that needs a console"
cat > "$ROOTFS/etc/systemd/system/testkit-hostkeys.service" <<'EOF'
[Unit]
Description=testkit: generate this node's SSH host keys
Before=ssh.service
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
EOF
cat > "$ROOTFS/etc/systemd/system/testkit-ready.service" <<'EOF'
[Unit]
Description=testkit: mark the node booted once sshd and docker started
After=ssh.service docker.service
[Service]
Type=oneshot
ExecStart=/bin/touch /run/testkit-init.done
[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$ROOTFS/etc/systemd/system/multi-user.target.wants"
for u in testkit-hostkeys testkit-ready; do
    ln -sf "/etc/systemd/system/$u.service" "$ROOTFS/etc/systemd/system/multi-user.target.wants/$u.service"
done
for u in getty@tty1.service console-getty.service systemd-udevd.service systemd-modules-load.service \
         systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$u"
done
# Whatever decides when the engine restarts during an upgrade is the upgrade tool's business:
# the image must not come with a policy-rc.d of its own.
rm -f "$ROOTFS/usr/sbin/policy-rc.d"

step "stage engine packages in an offline apt repository"
mkdir -p "$REPO"
for pv in "docker.io=$TARGET_DOCKER_IO" "docker-cli=$TARGET_DOCKER_CLI" "containerd=$TARGET_CONTAINERD" \
          "docker.io=$CURRENT_DOCKER_IO" "containerd=$CURRENT_CONTAINERD" \
          "runc=$CURRENT_RUNC" "tini=$CURRENT_TINI"; do
    cp "$(deb_of "${pv%%=*}" "${pv#*=}")" "$REPO/"
done
# The second hop in a repository of its own, not in the nodes' sources: an operator adds the
# newer suite when going to the next hop (Lab::enable_hop_repositories). In the same
# repository its containerd 2.x would be the "newest companion" of every 26.1.5 upgrade.
mkdir -p "$HOP_REPO"
for pv in "docker.io=$HOP_DOCKER_IO" "docker-cli=$HOP_DOCKER_CLI" "containerd=$HOP_CONTAINERD" \
          "tini-static=$HOP_TINI_STATIC"; do
    cp "$(deb_of "${pv%%=*}" "${pv#*=}")" "$HOP_REPO/"
done
(cd "$HOP_REPO" && dpkg-scanpackages --multiversion . /dev/null > Packages)

# repack SRC_DEB VERSION [HOOK]: the same package under another version, e.g. a broken engine
# that installs cleanly and then never starts.
repack() {
    local tree
    tree=$WORK/repack/$(basename "$1" .deb)
    mkdir -p "$WORK/repack"
    dpkg-deb -R "$1" "$tree"
    sed -i -e "s/^Version: .*/Version: $2/" \
           -e 's/^Description: .*/& (testkit: deliberately broken)/' "$tree/DEBIAN/control"
    if [ -n "${3:-}" ]; then "$3" "$tree"; fi
    (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' \
        | LC_ALL=C sort -z | xargs -0r md5sum > DEBIAN/md5sums)
    dpkg-deb --root-owner-group -Zgzip -b "$tree" "$REPO/" >/dev/null
}
break_dockerd() {
    cat > "$1/usr/sbin/dockerd" <<'EOF'
#!/bin/sh
echo "testkit: deliberately broken dockerd 26.1.99" >&2
exit 1
EOF
    chmod 0755 "$1/usr/sbin/dockerd"
}
repack "$(deb_of docker.io "$TARGET_DOCKER_IO")" "$BROKEN_VERSION" break_dockerd
repack "$(deb_of docker-cli "$TARGET_DOCKER_CLI")" "$BROKEN_VERSION"

(cd "$REPO" && dpkg-scanpackages --multiversion . /dev/null > Packages)
cp "$VERSIONS" "$REPO/versions.env"
ls -l "$REPO"

step "docker-ce-shaped repository (lab rebuilds from real engine binaries, not Docker's packages)"
# shellcheck disable=SC1090
. "$CE_SCRIPT"
build_docker_ce_repo

step "static binaries tarballs for the tarball upgrade method and the static flavour"
# Upstream's static tarballs unpack to docker/*. Debian's binaries are dynamically linked but
# run on bookworm; runc comes from bookworm because trixie's and forky's need glibc 2.38.
# static_tarball UPSTREAM PACKAGE=VERSION...
static_tarball() {
    local up=$1 x=$WORK/extract-$1 s=$WORK/static-$1 tarball=docker-$1.tgz pv
    shift
    for pv in "$@" "runc=$CURRENT_RUNC"; do
        dpkg-deb -x "$(deb_of "${pv%%=*}" "${pv#*=}")" "$x"
    done
    mkdir -p "$s/docker" "$STATIC"
    cp "$x/usr/sbin/dockerd" "$x/usr/sbin/docker-proxy" "$x/usr/bin/containerd" \
       "$x/usr/bin/containerd-shim-runc-v2" "$x/usr/bin/ctr" "$x/usr/sbin/runc" \
       "$x/usr/bin/docker" "$s/docker/"
    cp "$x/usr/bin/tini-static" "$s/docker/docker-init"
    tar -C "$s" --owner=0 --group=0 -czf "$STATIC/$tarball" docker
    (cd "$STATIC" && sha256sum "$tarball" > "$tarball.sha256")
    tar -tzvf "$STATIC/$tarball"
}
static_tarball "$TARGET_UPSTREAM" "docker.io=$TARGET_DOCKER_IO" "docker-cli=$TARGET_DOCKER_CLI" \
    "containerd=$TARGET_CONTAINERD" "tini=$CURRENT_TINI"
static_tarball "$(upstream "$HOP_DOCKER_IO")" "docker.io=$HOP_DOCKER_IO" "docker-cli=$HOP_DOCKER_CLI" \
    "containerd=$HOP_CONTAINERD" "tini-static=$HOP_TINI_STATIC"
start_upstream=$(upstream "$CURRENT_DOCKER_IO")
static_tarball "$start_upstream" "docker.io=$CURRENT_DOCKER_IO" "containerd=$CURRENT_CONTAINERD" \
    "tini=$CURRENT_TINI"
# What a static node starts from (node-boot.sh).
ln -s "docker-$start_upstream.tgz" "$STATIC/docker-start.tgz"

step "apt inside the node: the lab repository only, works offline"
rm -f "$ROOTFS/etc/apt/sources.list" "$ROOTFS"/etc/apt/sources.list.d/*
echo 'deb [trusted=yes] file:/srv/lab-repo ./' > "$ROOTFS/etc/apt/sources.list.d/lab.list"
rm -rf "$ROOTFS"/var/lib/apt/lists/*
mkdir -p "$ROOTFS/var/lib/apt/lists/partial"
chroot "$ROOTFS" apt-get update
chroot "$ROOTFS" apt-cache madison docker.io
chroot "$ROOTFS" apt-get clean

step "pack"
tar --numeric-owner -C "$ROOTFS" -cf - . | gzip -1 > "$OUT"
ls -l "$OUT"
step "done"
