# shellcheck shell=bash
# Finds a qemu-system-x86_64 that runs here (sourced by image/boot, after lib/common.sh).
#
# tk_qemu_setup sets QEMU_BIN and QEMU_ARGS (arguments every run needs, e.g. -L for the firmware
# and option ROM directory) and exports what the binary needs in its environment.
#
# A qemu-system-x86_64 on PATH is used as it is. Otherwise Debian 12's qemu 7.2 is unpacked into
# $TK_IMAGE_CACHE/qemu: installing qemu-system-x86 with apt is not possible on machines that carry
# the newer qemu-utils backport (the two conflict), so its packages are fetched with
# `apt-get download` and unpacked with `dpkg -x`. The shared libraries it needs are installed
# with apt when that removes nothing, else unpacked next to it too.

tk_qemu_setup() {
  QEMU_ARGS=()
  if QEMU_BIN=$(command -v qemu-system-x86_64) && "$QEMU_BIN" --version >/dev/null 2>&1; then
    return 0
  fi

  local dir=$TK_IMAGE_CACHE/qemu
  QEMU_BIN=$dir/usr/bin/qemu-system-x86_64
  if [ ! -x "$QEMU_BIN" ]; then
    tk_qemu_unpack "$dir"
  fi
  # Debian builds the TCG accelerator, display devices and UI parts as loadable modules; -L
  # points at the firmware and option ROMs of qemu-system-data.
  export QEMU_MODULE_DIR=$dir/usr/lib/x86_64-linux-gnu/qemu
  if [ -d "$dir/libs" ]; then
    export LD_LIBRARY_PATH="$dir/libs/usr/lib/x86_64-linux-gnu:$dir/libs/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  # shellcheck disable=SC2034 # used by image/boot
  QEMU_ARGS=(-L "$dir/usr/share/qemu")

  local missing
  missing=$(ldd "$QEMU_BIN" | grep 'not found' || true)
  [ -z "$missing" ] || tk_die "qemu in $dir still lacks libraries (remove $dir to fetch again):
$missing"
  "$QEMU_BIN" --version >/dev/null || tk_die "$QEMU_BIN does not run (remove $dir to fetch again)"
}

# tk_qemu_unpack DIR: fetches Debian's qemu-system-x86 and unpacks it into DIR.
tk_qemu_unpack() {
  local dir=$1 dl
  echo "fetching Debian's qemu-system-x86 into $dir (apt-get download + dpkg -x)"
  # apt downloads as user _apt: a directory it can reach (not under /root) and write.
  dl=$(mktemp -d "${TMPDIR:-/tmp}/qemu-download.XXXXXX")
  chmod 0755 "$dl"
  ! id _apt >/dev/null 2>&1 || chown _apt "$dl"
  (cd "$dl" && apt-get download -q qemu-system-x86 qemu-system-data qemu-system-common >/dev/null) || {
    apt-get update -qq
    (cd "$dl" && apt-get download -q qemu-system-x86 qemu-system-data qemu-system-common >/dev/null)
  }

  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  local deb
  for deb in "$dl"/*.deb; do dpkg -x "$deb" "$dir.tmp"; done

  # Its run-time dependencies (first alternative of each, without version constraints), minus
  # the packages unpacked here and the BIOS/iPXE ROMs, which image/boot does not use (OVMF is the
  # firmware; the VGA and NIC run without option ROMs).
  local deps=() missing=() p
  mapfile -t deps < <(
    for deb in "$dl"/*.deb; do dpkg-deb -f "$deb" Depends; done |
      tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' | grep -v '^$' |
      grep -vE '^(qemu-system-.*|seabios|ipxe-qemu)$' | sort -u
  )
  for p in "${deps[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if apt-get install -s --no-install-recommends "${missing[@]}" 2>/dev/null | grep -q '^Remv '; then
      # Installing them would remove something here: unpack them next to qemu instead.
      echo "unpacking qemu's libraries next to it (installing them would remove packages): ${missing[*]}"
      (cd "$dl" && apt-get download -q "${missing[@]}" >/dev/null)
      for p in "${missing[@]}"; do dpkg -x "$dl/${p}_"*.deb "$dir.tmp/libs"; done
    else
      echo "installing qemu's libraries from Debian: ${missing[*]}"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
  fi
  rm -rf "$dl" "$dir"
  mv "$dir.tmp" "$dir"
}

# tk_kvm_usable: true when qemu can use KVM here. /dev/kvm alone is not enough: some hosts
# expose a paravirtual KVM that cannot run firmware (qemu then stops with "KVM internal error");
# real KVM needs the CPU's virtualisation extensions, which /proc/cpuinfo shows.
tk_kvm_usable() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qE '^flags.*\b(vmx|svm)\b' /proc/cpuinfo
}
