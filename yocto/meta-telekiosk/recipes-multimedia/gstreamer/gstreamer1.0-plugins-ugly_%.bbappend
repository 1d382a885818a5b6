# x264enc: the software H.264 encoder every hardware profile falls back to. Its licence flag is
# accepted in conf/distro/telekiosk.conf.
PACKAGECONFIG:append:telekiosk = " x264"
