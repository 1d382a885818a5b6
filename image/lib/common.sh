# shellcheck shell=bash
# Shared by image/build, image/boot and image/provision (sourced, not run).
#
# - tk_step / tk_step_done: each step printed with the seconds it took ("== name (12.3 s)").
# - tk_need_packages: installs the Debian packages that are missing, like .ci/deps does.
# - TK_IMAGE_CACHE: where every big file lives (rootfs cache, image, qemu, VM run state).

TK_IMAGE_CACHE=${TK_IMAGE_CACHE:-$HOME/.cache/telekiosk-image}

tk_die() {
  echo "error: $*" >&2
  exit 1
}

# Microseconds since the epoch (bash 5's $EPOCHREALTIME without the dot).
tk_now_us() {
  local t=${EPOCHREALTIME/[.,]/}
  echo "$t"
}

# "12.3" from a start time in microseconds.
tk_seconds_since() {
  local us=$(($(tk_now_us) - $1))
  printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10))
}

# tk_step NAME: prints the start of a step; tk_step_done prints it again with its duration.
tk_step() {
  TK_STEP_NAME=$1
  TK_STEP_T0=$(tk_now_us)
  echo "== $TK_STEP_NAME ..."
}
tk_step_done() {
  echo "== $TK_STEP_NAME ($(tk_seconds_since "$TK_STEP_T0") s)${1:+ $1}"
}

# tk_need_packages PKG...: installs with apt-get whichever of the packages are not installed.
tk_need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "Installing from Debian: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Human-readable size of a byte count, in MiB with one decimal.
tk_mib() {
  local b=$1
  printf '%d.%d MiB' $((b / 1048576)) $((b * 10 / 1048576 % 10))
}

# tk_esp_offset IMG: byte offset of the EFI system partition in a raw GPT disk image (for mtools'
# IMG@@OFFSET syntax, so the ESP is read and written without mounting anything).
tk_esp_offset() {
  local img=$1 line start sector
  sector=$(sfdisk --dump "$img" 2>/dev/null | sed -n 's/^sector-size: *//p')
  line=$(sfdisk --dump "$img" 2>/dev/null | grep -i 'type=C12A7328-F81F-11D2-BA4B-00A0C93EC3B8' | head -n 1) ||
    tk_die "$img has no EFI system partition (is it a raw GPT disk image?)"
  start=$(sed -n 's/.*start= *\([0-9]*\).*/\1/p' <<<"$line")
  [ -n "$start" ] || tk_die "cannot read the ESP's start from: $line"
  echo $((start * ${sector:-512}))
}

# tk_refuse_qcow2 IMG: mtools and sfdisk need the raw image, not a qemu overlay.
tk_refuse_qcow2() {
  if [ "$(od -An -tx1 -N4 "$1" | tr -d ' ')" = 514649fb ]; then
    tk_die "$1 is a qcow2 file; give the raw image (qemu-img convert -O raw $1 OUT.img)"
  fi
}
