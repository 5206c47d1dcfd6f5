# Sourced by the benchmark scripts (bench.sh, instructions.sh, scaling.sh).
#
# install_missing PACKAGE...: installs the Debian packages given, if any,
# with apt-get, and exits the script if that fails. The packages' own
# services (nginx and h2o on port 80) are kept from being started by the
# install: a policy-rc.d that answers 101 ("action forbidden") for the
# time of the install, unless one is already there.
install_missing() {
    (($#)) || return 0
    export DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d made_policy= rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; } || rc=$?
    if [ -n "$made_policy" ]; then rm -f "$policy"; fi
    if [ "$rc" != 0 ]; then
        echo "installing $* failed" >&2
        exit 1
    fi
}
