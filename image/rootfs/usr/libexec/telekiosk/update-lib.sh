# Shared by the update scripts (sourced): the kiosk's update directory and safe writes into it.
# See /usr/share/doc/telekiosk/UPDATES.md (image/UPDATES.md in the source) for the files.
#
# The directory belongs to the kiosk's user, and these scripts run as root: every file is written
# through a fresh temporary file (mktemp: O_EXCL, never through a link the kiosk left there),
# handed to the kiosk (owner telekiosk, 0600), flushed and renamed into place; files from the
# kiosk are read only when they are small regular files, and only the fields that are needed.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
# BOOT_BACKEND, ESP, SLOT_[AB]_DEVICE, SLOT_[AB]_PARTUUID, BOOT_TRIES, UPDATE_DIR, KIOSK_USER
# (written by image/build; the Yocto layer ships its own, with BOOT_BACKEND=rauc).
# shellcheck source=/dev/null
. /usr/lib/telekiosk/update.conf
# shellcheck disable=SC2034 # used by the scripts that source this
dir=$UPDATE_DIR

log() { echo "$TK_UPDATE_NAME: $*"; }

# json_string S: S as a JSON string's contents (quotes and backslashes escaped, control
# characters dropped, at most 300 characters).
json_string() {
  printf '%s' "$1" | tr -d '\000-\037' | cut -c 1-300 | sed 's/\\/\\\\/g; s/"/\\"/g'
}

# put NAME CONTENT: writes $dir/NAME atomically, owned by the kiosk, mode 0600.
put() {
  tmp=$(mktemp "$dir/.$1.XXXXXX")
  printf '%s\n' "$2" >"$tmp"
  chown "$KIOSK_USER:$KIOSK_USER" "$tmp"
  chmod 0600 "$tmp"
  sync "$tmp"
  mv -f "$tmp" "$dir/$1"
  sync -f "$dir"
}

# readable NAME: a regular file (not a link), at most 64 KiB.
readable() {
  [ -f "$dir/$1" ] && [ ! -L "$dir/$1" ] && [ "$(stat -c %s "$dir/$1")" -le 65536 ]
}

# field NAME KEY: the string value of "KEY" in the JSON file $dir/NAME, if it is a plain word
# (letters, digits, . + ~ _ -); empty otherwise.
field() {
  readable "$1" || return 0
  tr -d '\n' <"$dir/$1" | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([A-Za-z0-9.+~_-]\{1,64\}\)\".*/\1/p"
}

# number NAME KEY: the integer value of "KEY" in $dir/NAME (up to 6 digits); empty otherwise.
number() {
  readable "$1" || return 0
  tr -d '\n' <"$dir/$1" | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\([0-9]\{1,6\}\)[^0-9].*/\1/p"
}

# The slot this boot runs from: rauc.slot= on the kernel command line (the Debian image's boot
# entries and meta-rauc's U-Boot scripts put it there), else RAUC's own answer (its EFI backend
# finds the booted slot from root=).
booted_slot() {
  s=$(sed -n 's/.*\brauc\.slot=\([A-Za-z0-9]*\).*/\1/p' /proc/cmdline)
  [ -n "$s" ] || s=$(rauc status --output-format=shell 2>/dev/null |
    sed -n "s/^RAUC_SYSTEM_BOOTED_BOOTNAME='\([A-Za-z0-9]*\)'\$/\1/p")
  echo "$s"
}

# The running image's version (IMAGE_VERSION= in os-release).
image_version() {
  sed -n 's/^IMAGE_VERSION=//p' /usr/lib/os-release | tr -d '"' | head -n 1
}
