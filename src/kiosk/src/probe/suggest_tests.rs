use telekiosk_protocol::probe::{
    AudioDevice, CaptureDevice, DisplayProbe, EncodeOutcome, EncoderProbe, Machine, TpmProbe,
};

use super::*;

fn shipped() -> Vec<Profile> {
    let dir = format!("{}/../../hw/profiles", env!("CARGO_MANIFEST_DIR"));
    super::super::load_profiles(std::path::Path::new(&dir)).0
}

fn encoded(name: &str, fps: f64) -> EncoderProbe {
    let outcome = EncodeOutcome::Encoded { frames: 150, fps, cpu_percent: 20.0, kbps: 1500 };
    EncoderProbe { name: name.into(), hardware: crate::media::is_hardware(name), outcome }
}

/// A board with a USB camera, a speakerphone, a TPM and a 800x480 panel at 5.2 px/mm.
fn board(model: &str, arch: &str, encoders: Vec<EncoderProbe>) -> ProbeReport {
    let audio = |name: &str| AudioDevice { name: name.into(), source: "alsasrc".into() };
    ProbeReport {
        software: "0.1.0".into(),
        machine: Machine { model: model.into(), arch: arch.into(), cpus: 4 },
        encoders,
        cameras: vec![CaptureDevice {
            name: "USB Camera".into(),
            device: "/dev/video0".into(),
            stable_name: "/dev/telekiosk/camera".into(),
            modes: vec!["1280x720@30 YUY2".into()],
        }],
        microphones: vec![audio("Speakerphone")],
        speakers: vec![audio("Speakerphone")],
        tpm: TpmProbe { tcti: "device:/dev/tpmrm0".into(), ok: true, detail: "IFX".into() },
        displays: vec![DisplayProbe {
            connector: "card0-DSI-1".into(),
            connected: true,
            modes: vec!["800x480".into()],
            width_mm: Some(154),
            height_mm: Some(86),
            px_per_mm: Some(5.2),
        }],
        watchdogs: vec![],
        suggestion: Suggestion { profile: None, why: String::new(), warnings: vec![] },
    }
}

#[test]
fn a_raspberry_pi_4_with_its_encoder_gets_rpi4_and_no_encoder_warning() {
    let report = board(
        "Raspberry Pi 4 Model B Rev 1.5",
        "aarch64",
        vec![encoded("v4l2h264enc", 61.0), encoded("x264enc", 24.0)],
    );
    let s = suggest(&report, &shipped());
    assert_eq!(s.profile.as_deref(), Some("rpi4"), "{s:?}");
    assert!(s.why.contains("v4l2h264enc"), "{}", s.why);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_board_whose_hardware_encoder_fails_is_told_it_falls_back_to_software() {
    let mut failed = encoded("v4l2h264enc", 0.0);
    failed.outcome = EncodeOutcome::Failed { error: "Could not open device".into() };
    let report = board("Raspberry Pi 4 Model B", "aarch64", vec![failed, encoded("x264enc", 24.0)]);
    let s = suggest(&report, &shipped());
    assert_eq!(s.profile.as_deref(), Some("rpi4"));
    let all = s.warnings.join(" | ");
    assert!(all.contains("first choice v4l2h264enc does not work here"), "{all}");
    assert!(
        all.contains(
            "x264enc encodes only 24 frames a second at 720p, too slow for 1280x720 at 30 fps"
        ),
        "{all}"
    );
}

#[test]
fn a_slow_encoder_is_enough_for_a_profile_of_smaller_pictures() {
    // 10 fps at 720p is 9.2 Mpixel/s; the qemu profile needs 320x240 at 15 fps (1.2 Mpixel/s).
    let vm = board("QEMU Standard PC (Q35 + ICH9, 2009)", "x86_64", vec![encoded("x264enc", 10.0)]);
    let s = suggest(&vm, &shipped());
    assert_eq!(s.profile.as_deref(), Some("qemu"));
    assert!(!s.warnings.join(" | ").contains("too slow"), "{:?}", s.warnings);
}

#[test]
fn an_unknown_pc_gets_the_x86_fallback_and_a_vm_gets_qemu_never_the_development_profile() {
    let pc = board("Dell Inc. OptiPlex 7010", "x86_64", vec![encoded("x264enc", 90.0)]);
    let s = suggest(&pc, &shipped());
    assert_eq!(s.profile.as_deref(), Some("generic-x86"), "{s:?}");
    assert!(s.why.contains("no profile names this board"), "{}", s.why);

    let vm = board("QEMU Standard PC (Q35 + ICH9, 2009)", "x86_64", vec![encoded("x264enc", 90.0)]);
    assert_eq!(suggest(&vm, &shipped()).profile.as_deref(), Some("qemu"));
}

#[test]
fn an_unknown_arm_board_gets_no_profile_and_says_what_to_do() {
    let report = board("Pine64 RockPro64", "aarch64", vec![encoded("x264enc", 20.0)]);
    let s = suggest(&report, &shipped());
    assert_eq!(s.profile, None);
    assert!(s.why.contains("Pine64 RockPro64 (aarch64)") && s.why.contains("copy"), "{}", s.why);
}

#[test]
fn missing_camera_speaker_tpm_and_a_different_panel_are_each_named() {
    let mut report = board("Raspberry Pi 4 Model B", "aarch64", vec![encoded("v4l2h264enc", 60.0)]);
    report.cameras.clear();
    report.speakers.clear();
    report.tpm =
        TpmProbe { tcti: "device:/dev/tpmrm0".into(), ok: false, detail: "no such file".into() };
    report.displays[0].modes = vec!["1024x600".into()];
    let all = suggest(&report, &shipped()).warnings.join(" | ");
    for expected in [
        "no camera was found",
        "no speaker was found",
        "no TPM answered at device:/dev/tpmrm0",
        "the display's own mode is 1024x600, the profile says 800x480",
    ] {
        assert!(all.contains(expected), "{expected}: {all}");
    }
    assert!(!all.contains("microphone"), "{all}");
}

#[test]
fn a_camera_on_another_node_and_a_denser_panel_are_named() {
    let mut report =
        board("Intel(R) Client Systems NUC12WSHi5", "x86_64", vec![encoded("vah264enc", 200.0)]);
    report.cameras[0].stable_name = String::new();
    report.displays[0].modes = vec!["1920x1080".into()];
    report.displays[0].px_per_mm = Some(7.0);
    let s = suggest(&report, &shipped());
    assert_eq!(s.profile.as_deref(), Some("intel-nuc"));
    let all = s.warnings.join(" | ");
    assert!(
        all.contains("its camera /dev/telekiosk/camera is not here (cameras: /dev/video0)"),
        "{all}"
    );
    assert!(all.contains("measures 7.0 px/mm"), "{all}");
}
