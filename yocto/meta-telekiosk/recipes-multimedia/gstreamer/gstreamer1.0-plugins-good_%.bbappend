# VP8 (vp8enc, vp8dec), the video codec every browser offers besides H.264. V4L2 (cameras and
# the V4L2 stateful H.264 encoders) is in oe-core's default list.
PACKAGECONFIG:append:telekiosk = " vpx"
