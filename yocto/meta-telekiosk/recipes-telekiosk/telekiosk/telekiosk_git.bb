# nooelint: oelint.var.bbclassextend
# (No native or nativesdk variant: the kiosk program only runs on the appliance.)
SUMMARY = "telekiosk: the telehealth kiosk program"
DESCRIPTION = "The kiosk appliance's one program: the touchscreen UI (Slint on DRM/KMS), the \
               WebRTC media pipelines (GStreamer), the TPM-held device identity and the fleet \
               agent. It runs as its own user under systemd (telekiosk.service)."
HOMEPAGE = "https://github.com/telekiosk/telekiosk"
BUGTRACKER = "https://github.com/telekiosk/telekiosk/issues"
SECTION = "multimedia"

# telekiosk itself is Apache-2.0 (Cargo.toml). The binary links its crates statically; their
# licences, with one choice made where a crate offers several (cargo tree -f '{l}'), are the rest.
# Slint (the UI toolkit) is "GPL-3.0-only OR LicenseRef-Slint-Royalty-free-2.0 OR
# LicenseRef-Slint-Software-3.0", and its royalty-free licence excludes embedded systems: unless
# the operator holds a Slint commercial licence (then replace GPL-3.0-only here), the image ships
# the kiosk under GPL-3.0-only terms. The second checksum is Slint's own GPL text in the vendored
# crate: a Slint upgrade changes that path and stops the build until this is looked at again.
LICENSE = "Apache-2.0 & GPL-3.0-only & MIT & BSD-2-Clause & BSD-3-Clause & ISC & Zlib & Unicode-3.0"
LIC_FILES_CHKSUM = "\
    file://Cargo.toml;beginline=9;endline=9;md5=2507bd5f0713f05419cd2f22fa06fe62 \
    file://${CARGO_VENDORING_DIRECTORY}/slint-1.18.1/LICENSES/GPL-3.0-only.txt;md5=8da5784ab1c72e63ac74971f88658166 \
"

# Its own name: no upstream product of another name to match CVEs against.
CVE_PRODUCT = "telekiosk"

# Libraries the crates' build scripts find with pkg-config and the binary links:
# gstreamer-rs (core, app, video, sdp, rtp from -base, webrtc from -bad), tss-esapi (esys, mu,
# tctildr), Slint's linuxkms backend (libinput, libudev, xkbcommon), fontique (fontconfig).
DEPENDS = "\
    fontconfig \
    glib-2.0 \
    gstreamer1.0 \
    gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-base \
    libinput \
    libxkbcommon \
    tpm2-tss \
    udev \
"

# The project's own repository. A release pins SRCREV to its commit and regenerates
# telekiosk-crates.inc from that commit's Cargo.lock (yocto/scripts/crates-from-lock). Never
# AUTOREV: the crate list would no longer match the fetched Cargo.lock, and builds would not be
# reproducible. To build a local checkout instead, see yocto/README.md (externalsrc).
PV = "0.1.0+git"
SRC_URI = "\
    git://github.com/telekiosk/telekiosk.git;protocol=https;branch=main \
    file://update.conf \
"
SRCREV = "e1084b03bf43b24ad3e8ed0a2fd96ec25661dbfb"
S = "${WORKDIR}/git"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

# The workspace also holds fleetd (the server) and test tools: build the kiosk binary only.
# The manifest is the workspace root (CARGO_SRC_DIR stays empty), so Cargo.lock applies as is;
# scarthgap's cargo class has no separate variable for extra flags, so they go here.
CARGO_BUILD_FLAGS += "--package telekiosk --bin telekiosk"

do_install() {
    install -D -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/telekiosk ${D}${bindir}/telekiosk

    # The units, the adoption script and the drop-ins come from the fetched source, so the
    # Debian image (image/build) and this one share a single copy of each.
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/image/systemd/telekiosk.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/image/systemd/telekiosk-provision.service ${D}${systemd_system_unitdir}/
    install -D -m 0755 ${S}/image/rootfs/usr/libexec/telekiosk/adopt-provisioning \
        ${D}${libexecdir}/telekiosk/adopt-provisioning

    # Hardware profiles: telekiosk.service passes --profile-dir /usr/share/telekiosk/profiles.
    install -d ${D}${datadir}/telekiosk/profiles
    install -m 0644 ${S}/hw/profiles/*.toml ${D}${datadir}/telekiosk/profiles/

    install -D -m 0644 ${S}/hw/udev/70-telekiosk.rules \
        ${D}${nonarch_base_libdir}/udev/rules.d/70-telekiosk.rules

    # No core dumps (a crash must not put a frame of a visit on disk); the journal in RAM only;
    # systemd pings the board's hardware watchdog (a hang resets the kiosk);
    # network-online after one link or 20 s, so a clinic without network still sees the screen.
    # Left out: the GStreamer registry drop-in (its registry is built by image/build with
    # gst-inspect in the target tree, which this cross build cannot run), 20-wired.network
    # (systemd-conf ships the same DHCP-on-any-wired-link default), sysusers.d (useradd below
    # creates the user at build time, as a read-only root needs), hostname and hosts
    # (base-files; the distro sets the name).
    install -D -m 0644 ${S}/image/rootfs/etc/sysctl.d/50-telekiosk.conf \
        ${D}${sysconfdir}/sysctl.d/50-telekiosk.conf
    install -D -m 0644 ${S}/image/rootfs/etc/systemd/journald.conf.d/telekiosk.conf \
        ${D}${sysconfdir}/systemd/journald.conf.d/telekiosk.conf
    install -D -m 0644 ${S}/image/rootfs/etc/systemd/system.conf.d/telekiosk-watchdog.conf \
        ${D}${sysconfdir}/systemd/system.conf.d/telekiosk-watchdog.conf
    install -D -m 0644 ${S}/image/rootfs/etc/systemd/system/systemd-networkd-wait-online.service.d/telekiosk.conf \
        ${D}${sysconfdir}/systemd/system/systemd-networkd-wait-online.service.d/telekiosk.conf

    # OS updates (image/UPDATES.md): the root-owned units that install the bundle the kiosk
    # fetched, reboot when it asks, and confirm or roll back a trial boot. RAUC's own boot-loader
    # backend switches slots here (update.conf: BOOT_BACKEND=rauc), so the Debian image's
    # systemd-boot backend (rauc-bootloader) is left out. Only root may call RAUC over D-Bus.
    install -m 0755 ${S}/image/rootfs/usr/libexec/telekiosk/update-lib.sh ${D}${libexecdir}/telekiosk/
    install -m 0755 ${S}/image/rootfs/usr/libexec/telekiosk/update-install ${D}${libexecdir}/telekiosk/
    install -m 0755 ${S}/image/rootfs/usr/libexec/telekiosk/update-reboot ${D}${libexecdir}/telekiosk/
    install -m 0755 ${S}/image/rootfs/usr/libexec/telekiosk/update-check ${D}${libexecdir}/telekiosk/
    install -D -m 0644 ${WORKDIR}/update.conf ${D}${nonarch_libdir}/telekiosk/update.conf
    install -m 0644 ${S}/image/systemd/telekiosk-update-check.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/image/systemd/telekiosk-update-install.path ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/image/systemd/telekiosk-update-install.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/image/systemd/telekiosk-update-reboot.path ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/image/systemd/telekiosk-update-reboot.service ${D}${systemd_system_unitdir}/
    install -D -m 0644 ${S}/image/rootfs/usr/lib/tmpfiles.d/telekiosk-update.conf \
        ${D}${nonarch_libdir}/tmpfiles.d/telekiosk-update.conf
    install -D -m 0644 ${S}/image/rootfs/etc/dbus-1/system.d/telekiosk-rauc.conf \
        ${D}${sysconfdir}/dbus-1/system.d/telekiosk-rauc.conf

    # The kiosk's state directory (StateDirectory=telekiosk): the mount point of the state
    # partition on the appliance; the read-only root must already have it.
    install -d -m 0700 -o telekiosk -g telekiosk ${D}${localstatedir}/lib/telekiosk
}

# The install and reboot services are started by their .path units, not enabled themselves.
SYSTEMD_SERVICE:${PN} = "\
    telekiosk.service \
    telekiosk-provision.service \
    telekiosk-update-check.service \
    telekiosk-update-install.path \
    telekiosk-update-reboot.path \
"
FILES:${PN} += "${nonarch_libdir}/telekiosk ${nonarch_libdir}/tmpfiles.d"

# The kiosk's user, as image/rootfs/usr/lib/sysusers.d/telekiosk.conf describes it for the
# Debian image: fixed ID 900 (the state partition outlives updates and stays owned by the same
# user), in the groups of the devices it uses: TPM (tss), camera and display (video, render),
# sound (audio), touch (input). video and audio come with base-passwd, which useradd always
# installs first; tss (tpm2-tss), render and input (systemd's udev) are created here too in case
# this package is installed before theirs, and groupadd skips a group that already exists.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system --gid 900 telekiosk; --system tss; --system render; --system input"
USERADD_PARAM:${PN} = "--system --uid 900 --gid telekiosk --groups tss,video,audio,render,input \
                       --home-dir ${localstatedir}/lib/telekiosk --no-create-home \
                       --shell ${base_sbindir}/nologin telekiosk"

# GStreamer plugins the pipelines create by name (loaded at run time, so no shared-library
# dependency finds them): webrtcbin with ICE (libnice), DTLS and SRTP; RTP payloaders and rtpbin;
# H.264 (x264enc, h264parse, avdec_h264), VP8 and Opus; echo cancellation (webrtcdsp); capture
# (v4l2src, alsasrc) and playback; conversion, rate, level and test sources.
TELEKIOSK_GST_PLUGINS = "\
    gstreamer1.0-libav \
    gstreamer1.0-plugins-bad-dtls \
    gstreamer1.0-plugins-bad-srtp \
    gstreamer1.0-plugins-bad-videoparsersbad \
    gstreamer1.0-plugins-bad-webrtc \
    gstreamer1.0-plugins-bad-webrtcdsp \
    gstreamer1.0-plugins-base-alsa \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-audioconvert \
    gstreamer1.0-plugins-base-audioresample \
    gstreamer1.0-plugins-base-audiotestsrc \
    gstreamer1.0-plugins-base-opus \
    gstreamer1.0-plugins-base-playback \
    gstreamer1.0-plugins-base-typefindfunctions \
    gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-base-videorate \
    gstreamer1.0-plugins-base-videotestsrc \
    gstreamer1.0-plugins-base-volume \
    gstreamer1.0-plugins-good-level \
    gstreamer1.0-plugins-good-rtp \
    gstreamer1.0-plugins-good-rtpmanager \
    gstreamer1.0-plugins-good-video4linux2 \
    gstreamer1.0-plugins-good-vpx \
    gstreamer1.0-plugins-ugly-x264 \
    libnice \
"
# The boards' own encoders and cameras (hw/profiles/*.toml): VA-API (vah264enc) on Intel,
# libcamerasrc on the Raspberry Pi, NXP's VPU plugin (vpuenc_h264) on the i.MX 8M Plus.
TELEKIOSK_GST_PLUGINS:append:x86-64 = " gstreamer1.0-plugins-bad-va"
TELEKIOSK_GST_PLUGINS:append:rpi = " libcamera-gst"
TELEKIOSK_GST_PLUGINS:append:imxvpu = " imx-gst1.0-plugin"

# Also loaded at run time: the TPM's device TCTI (dlopened by libtss2-tctildr), tpm2-tss's udev
# rules (/dev/tpmrm0 to group tss), xkbcommon and its keymaps (dlopened by Slint's linuxkms
# backend), fontconfig and the DejaVu fonts, the time zones (opening hours, read by jiff), the CA
# bundle, coreutils for adopt-provisioning and the update scripts (busybox's sync has no -f;
# mktemp, stat), and RAUC, which the update scripts call.
RDEPENDS:${PN} = "\
    ${TELEKIOSK_GST_PLUGINS} \
    ca-certificates \
    coreutils \
    fontconfig \
    libtss2 \
    libtss2-tcti-device \
    libxkbcommon \
    rauc \
    tpm2-tss \
    ttf-dejavu-sans \
    ttf-dejavu-sans-mono \
    tzdata \
    xkeyboard-config \
"
