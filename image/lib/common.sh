# shellcheck shell=bash
# Shared by image/build, image/bundle, image/boot and image/provision (sourced, not run).
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

# tk_need_space DIR MIB WHAT: stops with a plain error, before anything is written, when the file
# system holding DIR has less than MIB MiB free.
tk_need_space() {
  local dir=$1 need=$2 what=$3 free
  mkdir -p "$dir"
  free=$(($(df --output=avail -k "$dir" | tail -n 1) / 1024))
  ((free >= need)) ||
    tk_die "$what needs about $need MiB free in $dir; that file system has $free MiB free. Free some space (old images in $TK_IMAGE_CACHE, a cargo target directory) and run it again."
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

# tk_make_bundle_ca DIR NAME [CA_DAYS] [SIGNING_DAYS]: a bundle CA (ca.cert.pem, ca.key.pem) and
# a signing certificate it issued (tk_issue_signing_cert) in DIR (mode 0700, keys 0600).
tk_make_bundle_ca() {
  local dir=$1 name=$2 days=${3:-3650}
  mkdir -p "$dir"
  chmod 0700 "$dir"
  [ ! -e "$dir/ca.key.pem" ] || tk_die "$dir already holds a CA key: not overwritten"
  (umask 077 && openssl req -x509 -new -newkey rsa:4096 -nodes -sha256 -days "$days" \
    -keyout "$dir/ca.key.pem" -out "$dir/ca.cert.pem" -subj "/O=$name/CN=$name bundle CA" \
    -addext basicConstraints=critical,CA:TRUE,pathlen:0 \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null) || tk_die "openssl failed to make a CA in $dir"
  chmod 0644 "$dir/ca.cert.pem"
  tk_issue_signing_cert "$dir" "$name" "${4:-$days}"
}

# tk_issue_signing_cert DIR NAME DAYS: a new key (signing.key.pem) and a code-signing certificate
# (signing.cert.pem) from DIR's CA. RAUC on the kiosk (check-purpose=codesign) takes only a leaf
# with extendedKeyUsage codeSigning.
tk_issue_signing_cert() {
  local dir=$1 name=$2 days=$3
  (
    umask 077
    cd "$dir" || exit 1
    openssl req -new -newkey rsa:3072 -nodes -sha256 -keyout signing.key.pem -out signing.csr.pem \
      -subj "/O=$name/CN=$name bundle signing $(date -u +%Y-%m-%d)" 2>/dev/null
    printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature \
      extendedKeyUsage=critical,codeSigning subjectKeyIdentifier=hash authorityKeyIdentifier=keyid >signing.ext
    openssl x509 -req -sha256 -days "$days" -in signing.csr.pem -CA ca.cert.pem -CAkey ca.key.pem \
      -CAcreateserial -extfile signing.ext -out signing.cert.pem 2>/dev/null
    rm -f signing.csr.pem signing.ext
    chmod 0644 signing.cert.pem
  ) || tk_die "openssl failed to issue a signing certificate in $dir"
  openssl verify -CAfile "$dir/ca.cert.pem" -purpose any "$dir/signing.cert.pem" >/dev/null ||
    tk_die "the signing certificate in $dir does not verify against its CA"
}

# tk_dev_bundle_ca: the development bundle CA of this cache (made once), in TK_DEV_CA. Images that
# trust it take updates from anyone who can read this directory: development and tests only.
tk_dev_bundle_ca() {
  TK_DEV_CA=$TK_IMAGE_CACHE/bundle-dev-ca
  if [ ! -s "$TK_DEV_CA/signing.cert.pem" ]; then
    echo "making the development bundle CA in $TK_DEV_CA"
    rm -rf "$TK_DEV_CA"
    tk_make_bundle_ca "$TK_DEV_CA" "telekiosk development" 3650
  fi
}

# tk_partition IMG NAME: "START SIZE" in bytes of the GPT partition called NAME in a raw image.
tk_partition() {
  local img=$1 name=$2 line sector
  sector=$(sfdisk --dump "$img" 2>/dev/null | sed -n 's/^sector-size: *//p')
  line=$(sfdisk --dump "$img" 2>/dev/null | grep "name=\"$name\"" | head -n 1) ||
    tk_die "$img has no partition named $name"
  local start size
  start=$(sed -n 's/.*start= *\([0-9]*\).*/\1/p' <<<"$line")
  size=$(sed -n 's/.*size= *\([0-9]*\).*/\1/p' <<<"$line")
  echo "$((start * ${sector:-512})) $((size * ${sector:-512}))"
}
