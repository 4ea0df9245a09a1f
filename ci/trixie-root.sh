#!/usr/bin/env bash
# The Debian trixie root that holds Open MPI 5.0.7 (and CRIU 4.x), cached outside git:
#   $DICOM_CACHE/trixie-root   (default /var/cache/dicom-ompi/trixie-root)
# Idempotent: a stamp file records the suite and package list; when it matches,
# the script returns at once. Otherwise it debootstraps into DIR.partial (with
# the downloaded .debs cached in $DICOM_CACHE/debs-trixie), then swaps it in.
#
#   ci/trixie-root.sh            ensure the root exists; prints its path on stdout
#   ci/trixie-root.sh --path     print the path only (no work)
#   ci/trixie-root.sh --rebuild  rebuild even when the stamp matches
#
# Nothing is ever left mounted inside the root: commands run in it through
# control/trixie (a private mount namespace per command).
set -euo pipefail

CACHE=${DICOM_CACHE:-/var/cache/dicom-ompi}
DIR=${DICOM_TRIXIE_ROOT:-$CACHE/trixie-root}
SUITE=trixie
PACKAGES=(
  criu                       # CRIU 4.x for migration (DESIGN.md §4)
  libopenmpi-dev openmpi-bin # Open MPI 5.0.7 (DESIGN.md §6)
  build-essential make       # gcc, make: btl_dicom, libdicom and the MPI tests are built inside
  openssh-client             # Open MPI's rsh launcher needs ssh to exist
  automake                   # provides automake-1.17, which libltdl-dev (via libhwloc-dev) needs;
                             # debootstrap's resolver does not follow virtual packages
  ca-certificates
)
STAMP_NAME=.dicom-trixie-root
log() { printf '» trixie-root: %s\n' "$*" >&2; }
die() { printf 'trixie-root: error: %s\n' "$*" >&2; exit 1; }

want_stamp() { printf 'suite=%s\npackages=%s\n' "$SUITE" "$(printf '%s\n' "${PACKAGES[@]}" | sort | tr '\n' ' ')"; }

case "${1:-}" in
  --path) echo "$DIR"; exit 0 ;;
  --rebuild) REBUILD=1 ;;
  '') REBUILD=0 ;;
  *) echo "usage: $0 [--path|--rebuild]" >&2; exit 2 ;;
esac

if [ -f "$DIR/$STAMP_NAME" ] && [ "$REBUILD" = 0 ] && [ "$(cat "$DIR/$STAMP_NAME")" = "$(want_stamp)" ]; then
  log "cached: $DIR"
  echo "$DIR"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot); try: sudo $0"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"

# The mirror this host already uses for Debian (deb822 or one-line sources).
mirror=$(
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    awk '/^URIs:/{for(i=2;i<=NF;i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}'
)
if [ -z "$mirror" ]; then
  mirror=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
    awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) {print $i; exit}}')
fi
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$CACHE" "$CACHE/debs-$SUITE"
exec 9>"$CACHE/trixie-root.lock"
flock -w 1800 9 || die "another trixie-root build holds $CACHE/trixie-root.lock"
# Someone may have finished while we waited.
if [ -f "$DIR/$STAMP_NAME" ] && [ "$REBUILD" = 0 ] && [ "$(cat "$DIR/$STAMP_NAME")" = "$(want_stamp)" ]; then
  log "cached: $DIR"; echo "$DIR"; exit 0
fi

# Refuse to delete a tree that has anything mounted under it (a running chroot).
safe_rm() {
  local d=$1
  [ -e "$d" ] || return 0
  local m; m=$(awk -v d="$d" '$2==d || index($2, d "/")==1 {print $2}' /proc/mounts)
  [ -z "$m" ] || die "refusing to remove $d: still mounted: $m"
  rm -rf --one-file-system "$d"
}

partial="$DIR.partial"
safe_rm "$partial"
include=$(IFS=,; echo "${PACKAGES[*]}")
log "debootstrap --variant=minbase --include=$include $SUITE $partial $mirror"
start=$(date +%s)
logfile="$CACHE/trixie-root.debootstrap.log"
set +e
debootstrap --variant=minbase --include="$include" --cache-dir="$CACHE/debs-$SUITE" \
  "$SUITE" "$partial" "$mirror" 2>&1 | tee "$logfile" |
  while IFS= read -r line; do
    case "$line" in
      I:\ Retrieving*|I:\ Validating*|I:\ Unpacking\ *|I:\ Configuring\ *) : ;; # per-package noise
      *) printf '  %s\n' "$line" >&2 ;;
    esac
  done
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  tail -n 5 "$partial/debootstrap/debootstrap.log" 2>/dev/null | sed 's/^/  debootstrap.log: /' >&2 || true
  die "debootstrap failed (exit $rc) for $SUITE from $mirror; full output in $logfile. Check that $mirror is reachable (apt-get update) and that /usr/share/keyrings/debian-archive-keyring.gpg knows $SUITE's key"
fi

# Sanity: the facts the generator relies on.
[ -x "$partial/usr/bin/ompi_info" ] || die "debootstrap succeeded but $partial/usr/bin/ompi_info is missing"
[ -x "$partial/usr/sbin/criu" ] || die "debootstrap succeeded but $partial/usr/sbin/criu is missing"
cp /etc/resolv.conf "$partial/etc/resolv.conf" 2>/dev/null || true
rm -f "$partial/var/cache/apt/archives/"*.deb
want_stamp > "$partial/$STAMP_NAME"

if [ -e "$DIR" ]; then
  safe_rm "$DIR.old"
  mv "$DIR" "$DIR.old"
fi
mv "$partial" "$DIR"
safe_rm "$DIR.old"
log "ready in $(( $(date +%s) - start )) s: $DIR ($(du -sh --one-file-system "$DIR" | cut -f1))"
echo "$DIR"
