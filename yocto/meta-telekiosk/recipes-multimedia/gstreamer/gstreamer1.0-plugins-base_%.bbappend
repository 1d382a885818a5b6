# Opus, the calls' audio codec (opusenc, opusdec). ALSA comes with the alsa distro feature.
PACKAGECONFIG:append:telekiosk = " opus"
