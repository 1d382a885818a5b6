# The nicesrc/nicesink GStreamer elements, through which webrtcbin does ICE.
PACKAGECONFIG:append:telekiosk = " gstreamer"
