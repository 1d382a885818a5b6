# libcamerasrc: the Raspberry Pi camera modules (hw/profiles/rpi4.toml, rpi5.toml).
PACKAGECONFIG:append:telekiosk:rpi = " gst"
