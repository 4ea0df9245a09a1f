#!/usr/bin/env bash
# The bookworm root that the kernel-mailbox MPI guest boots (issue 6, item 3):
# Open MPI 4.1.4 as on the host, so the host-built BTL and MPI programs run in it.
# Cached outside git: $DICOM_CACHE/kernel/guest-root (default /var/cache/dicom-ompi).
# Idempotent: a stamp holds the suite and packages; a match returns at once.
#
#   ci/kernel-guest-root.sh            ensure the root; prints its path on stdout
#   ci/kernel-guest-root.sh --path     print the path only
#   ci/kernel-guest-root.sh --rebuild  rebuild even when the stamp matches
set -euo pipefail

CACHE=${DICOM_CACHE:-/var/cache/dicom-ompi}
DIR=${DICOM_GUEST_ROOT:-$CACHE/kernel/guest-root}
SUITE=bookworm
# openssh-client: Open MPI's rsh launcher refuses to start without ssh, even on one node.
# openssh-server: the relay guests (`kernel test --relay`) start the rank on the second node over ssh.
PACKAGES=(openmpi-bin libopenmpi3 openssh-client openssh-server)
STAMP=.dicom-guest-root
say() { printf '» guest-root: %s\n' "$*" >&2; }
fail() { printf 'guest-root: error: %s\n' "$*" >&2; exit 1; }
stamp() { printf 'suite=%s packages=%s\n' "$SUITE" "${PACKAGES[*]}"; }
is_current() { [ -f "$DIR/$STAMP" ] && [ "$(cat "$DIR/$STAMP")" = "$(stamp)" ]; }

mode=${1:-}
case "$mode" in
  --path) echo "$DIR"; exit 0 ;;
  --rebuild|'') ;;
  *) echo "usage: $0 [--path|--rebuild]" >&2; exit 2 ;;
esac
if [ "$mode" != --rebuild ] && is_current; then say "cached: $DIR"; echo "$DIR"; exit 0; fi

[ "$(id -u)" -eq 0 ] || fail "debootstrap needs root; try: sudo $0"
command -v debootstrap >/dev/null || fail "debootstrap is missing: apt-get install debootstrap"
mirror=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' \
  /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$(dirname "$DIR")" "$CACHE/kernel/debs-$SUITE"
exec 9>"$DIR.lock"
flock -w 1800 9 || fail "another build holds $DIR.lock"
if [ "$mode" != --rebuild ] && is_current; then say "cached: $DIR"; echo "$DIR"; exit 0; fi

partial=$DIR.partial
rm -rf --one-file-system "$partial"
say "debootstrap --variant=minbase $SUITE from $mirror with ${PACKAGES[*]}"
t0=$(date +%s)
log=$DIR.debootstrap.log
set +e
debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --cache-dir="$CACHE/kernel/debs-$SUITE" "$SUITE" "$partial" "$mirror" 2>&1 | tee "$log" |
  awk '/^I: (Retrieving|Validating|Unpacking|Configuring) / {n++; if (n % 25) next; printf "  ... %d packages handled\n", n > "/dev/stderr"; next}
       {print "  " $0 > "/dev/stderr"}'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "debootstrap exited $rc; see $log (is $mirror reachable? apt-get update)"
[ -x "$partial/usr/bin/mpirun" ] || fail "debootstrap finished but $partial/usr/bin/mpirun is missing"
# The guest boots this tree as an initramfs: drop what only makes it bigger.
rm -rf "$partial"/usr/share/{doc,man,info,locale} "$partial"/var/cache/apt/archives/*.deb \
  "$partial"/var/lib/apt/lists/*
stamp > "$partial/$STAMP"
rm -rf --one-file-system "$DIR"
mv "$partial" "$DIR"
say "ready in $(( $(date +%s) - t0 )) s: $DIR ($(du -sh --one-file-system "$DIR" | cut -f1))"
echo "$DIR"
