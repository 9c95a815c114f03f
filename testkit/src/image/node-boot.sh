#!/bin/sh
# testkit node entrypoint (PID 1 until it execs the node's real init). The flavour of the
# node, TESTKIT_FLAVOUR, is set by `testkit up`:
#   sysv-docker.io     Debian's docker.io under sysvinit (`service docker`), tini as PID 1
#   systemd-docker.io  Debian's docker.io under systemd (docker.service + docker.socket)
#   systemd-docker-ce  the lab's docker-ce packages (/srv/docker-ce-repo) under systemd
#   static             an engine unpacked from a tarball into /usr/local/bin, owned by no
#                      package, started by an init script; tini as PID 1
# At the first start a docker-ce or static node is provisioned from the image's docker.io
# with apt/dpkg, offline, exactly like an administrator would (then /etc/testkit-flavour).
set -eu
flavour=${TESTKIT_FLAVOUR:-sysv-docker.io}
log() { echo "testkit-boot: $*"; }

# No service may start while the node is provisioned (there is no init yet anyway).
forbid_starts() {
    printf '#!/bin/sh\n# testkit-boot: provisioning\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
}

provision() {
    case "$flavour" in
        sysv-docker.io|systemd-docker.io) ;;
        systemd-docker-ce)
            . /srv/docker-ce-repo/versions.env
            forbid_starts
            echo 'deb [trusted=yes] file:/srv/docker-ce-repo ./' > /etc/apt/sources.list.d/docker.list
            apt-get update -qq
            # docker-ce Conflicts with docker.io, containerd.io with containerd and runc: apt
            # removes Debian's family itself, as on a host that switches to Docker's repository.
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                "docker-ce=$CE_START" "docker-ce-cli=$CE_START" "containerd.io=$CONTAINERD_IO_START" \
                "docker-ce-rootless-extras=$CE_START" "docker-buildx-plugin=$BUILDX_PLUGIN_START" \
                "docker-compose-plugin=$COMPOSE_PLUGIN_START"
            rm -f /usr/sbin/policy-rc.d
            ;;
        static)
            forbid_starts
            # Keep the (edited) init script: remove, not purge, leaves conffiles in place.
            DEBIAN_FRONTEND=noninteractive dpkg --remove docker.io containerd runc
            tar -C /usr/local/bin --strip-components=1 --no-same-owner -xzf /srv/lab-static/docker-start.tgz
            # The init script of Debian's docker.io, pointed at the unpacked dockerd.
            sed -i 's|^DOCKERD=/usr/sbin/dockerd$|DOCKERD=/usr/local/bin/dockerd|' /etc/init.d/docker
            grep -q '^DOCKERD=/usr/local/bin/dockerd$' /etc/init.d/docker
            # dpkg --remove leaves the conffile, but no longer executable.
            chmod 0755 /etc/init.d/docker
            rm -f /usr/sbin/policy-rc.d
            ;;
        *) log "unknown flavour $flavour"; exit 1 ;;
    esac
    echo "$flavour" > /etc/testkit-flavour
}

if [ ! -e /etc/testkit-flavour ]; then
    log "provisioning flavour $flavour"
    provision
fi
[ "$(cat /etc/testkit-flavour)" = "$flavour" ] || { log "node was provisioned as $(cat /etc/testkit-flavour), not $flavour"; exit 1; }

case "$flavour" in
    systemd-*)
        # systemd cannot raise a hard limit without CAP_SYS_RESOURCE, so units asking for
        # `infinity` would fail to start: cap them at what this container has.
        for unit in docker containerd; do
            mkdir -p "/etc/systemd/system/$unit.service.d"
            printf '[Service]\nLimitNOFILE=%s\nLimitNPROC=%s\nLimitCORE=%s\n' \
                "$(ulimit -H -n)" "$(ulimit -H -u)" "$(ulimit -H -c)" \
                > "/etc/systemd/system/$unit.service.d/testkit-limits.conf"
        done
        exec /lib/systemd/systemd
        ;;
    *)
        exec /usr/local/sbin/testkit-tini -- /usr/local/sbin/testkit-init
        ;;
esac
