# webrtcbin (webrtc, with libnice), its DTLS handshake and SRTP (dtls, srtp), and echo
# cancellation (webrtcdsp): the kiosk's calls. dtls is in oe-core's default list already; it is
# named here so that this list says everything the kiosk relies on. Like every bbappend of this
# layer, it applies to the telekiosk distro only.
PACKAGECONFIG:append:telekiosk = " dtls srtp webrtc webrtcdsp"
# Intel kiosks encode H.264 on the iGPU (vah264enc, vah264lpenc in hw/profiles/intel-nuc.toml).
PACKAGECONFIG:append:telekiosk:x86-64 = " va"
