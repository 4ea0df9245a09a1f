#!/usr/bin/env bash
# Installs what DiCOM needs on a Debian bookworm host, idempotently: only the
# missing apt packages are installed, npm dependencies only when the lockfile
# changed. Heavy caches live outside git under $DICOM_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential make pkg-config
  libopenmpi-dev openmpi-bin netpipe-openmpi
  clang libclang-rt-14-dev
  iproute2 openssh-server openssh-client util-linux procps
  postgresql
)

log() { printf '» provision: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "provision: must run as root (apt-get, network namespaces); try: sudo $0" >&2
  exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
else
  log "apt packages present"
fi

stamp=node_modules/.dicom-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >&2
  echo "$want" > "$stamp"
else
  log "npm dependencies present"
fi

mkdir -p "${DICOM_CACHE:-/var/cache/dicom-ompi}" /run/sshd

# The job database for the tests: Debian's PostgreSQL, started if it is down,
# with a role "dicom" (CREATEDB, for the tests' own databases) and a database
# "dicom". Tests use DATABASE_URL=postgresql://dicom:dicom@127.0.0.1:5432/dicom_test
# and create dicom_test themselves when it is missing.
pg_cluster=$(pg_lsclusters --no-header 2>/dev/null | awk '$2=="main"{print $1; exit}')
if [ -z "$pg_cluster" ]; then
  log "creating PostgreSQL cluster main"
  pg_createcluster "$(ls /usr/lib/postgresql | sort -n | tail -n1)" main >&2
  pg_cluster=$(pg_lsclusters --no-header | awk '$2=="main"{print $1; exit}')
fi
if ! pg_lsclusters --no-header | awk -v v="$pg_cluster" '$1==v && $2=="main"{print $4}' | grep -q online; then
  log "starting PostgreSQL $pg_cluster/main"
  pg_ctlcluster "$pg_cluster" main start >&2 || service postgresql start >&2
fi
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
su postgres -c "psql -q -v ON_ERROR_STOP=1" >&2 <<'SQL'
DO $$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dicom') THEN
    CREATE ROLE dicom LOGIN CREATEDB PASSWORD 'dicom';
  END IF;
END$$;
SELECT 'CREATE DATABASE dicom OWNER dicom' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'dicom')\gexec
SQL

# The Prisma client is generated build output (build/prisma-client), redone when the schema changes.
pstamp=build/prisma-client/.schema-sha
pwant=$(cat prisma/schema.prisma package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$pstamp" ] || [ "$(cat "$pstamp")" != "$pwant" ]; then
  log "prisma generate"
  DATABASE_URL=${DATABASE_URL:-postgresql://dicom:dicom@127.0.0.1:5432/dicom} npx prisma generate >&2
  echo "$pwant" > "$pstamp"
fi

# ---- Open MPI 5.0.7 + CRIU 4.x: the debootstrapped trixie root (issue 7) ----
# Idempotent and stamped: about 2 min the first time, instant afterwards.
# DICOM_SKIP_TRIXIE_ROOT=1 skips it (the Open MPI 5 tests then create it on demand).
if [ "${DICOM_SKIP_TRIXIE_ROOT:-0}" != 1 ]; then
  if ! command -v debootstrap >/dev/null; then
    log "apt-get install debootstrap"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
  fi
  bash ci/trixie-root.sh >/dev/null
fi
# ---- end trixie root ----

# ---- headless Chromium: the matrix page test (tests/matrix.test.ts, puppeteer-core) ----
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
  log "apt-get install chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends chromium >&2
fi
# ---- end headless Chromium ----

# ---- kernel cell (issue 6): qemu TCG, static busybox, pahole; Debian's 6.1 kernel packages cached ----
# tests/kernel.test.ts renders the mailbox driver for 6.1, builds it against
# linux-headers and boots linux-image in qemu TCG. `dicomctl kernel fetch`
# downloads source, headers and image once into $DICOM_CACHE/kernel (with
# progress) and unpacks them there; afterwards it is instant. Nothing is
# installed as the host's kernel. DICOM_SKIP_KERNEL_CACHE=1 skips the download
# (the test then fetches on demand). 6.12 is fetched by its own cell.
KERNEL_APT=(qemu-system-x86 busybox-static cpio dwarves kmod gcc-12 git perl debootstrap xz-utils zstd dkms)
kmissing=()
for p in "${KERNEL_APT[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || kmissing+=("$p")
done
if [ ${#kmissing[@]} -gt 0 ]; then
  log "apt-get install ${kmissing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${kmissing[@]}" >&2
fi
if [ "${DICOM_SKIP_KERNEL_CACHE:-0}" != 1 ]; then
  ./bin/dicomctl kernel fetch --kernel 6.1 >/dev/null
  # The MPI guest's bookworm root (`kernel test --mpi`): about a minute once, then instant.
  bash ci/kernel-guest-root.sh >/dev/null
fi
# ---- end kernel cell ----

# ---- CRIU for live migration (issue 4) ----
# The trixie root's CRIU 4 (bookworm's 3.17 fails on this kernel) must pass `criu check`.
# In the lab every node shares one PID namespace, and a rank is restored with its own PIDs
# (and its threads' TIDs): with the default pid_max of 32768 they are reused within seconds on
# a busy machine, which fails the restore. 4194304 is the kernel's maximum.
if [ "${DICOM_SKIP_TRIXIE_ROOT:-0}" != 1 ]; then
  R=${DICOM_CACHE:-/var/cache/dicom-ompi}/trixie-root
  if ! out=$("$R/lib64/ld-linux-x86-64.so.2" --library-path "$R/lib/x86_64-linux-gnu:$R/usr/lib/x86_64-linux-gnu" \
        "$R/usr/sbin/criu" check 2>&1) || ! grep -q "Looks good" <<<"$out"; then
    echo "provision: CRIU cannot work on this kernel ($(uname -r)); criu check said:" >&2
    echo "$out" | tail -n 5 >&2
    echo "provision: live migration needs it (DESIGN.md §4)" >&2
    exit 1
  fi
  log "criu check: Looks good"
fi
if [ "$(cat /proc/sys/kernel/pid_max)" -lt 4194304 ]; then
  log "kernel.pid_max 4194304 (restored ranks keep their PIDs)"
  sysctl -q -w kernel.pid_max=4194304
fi
# ---- end CRIU ----
