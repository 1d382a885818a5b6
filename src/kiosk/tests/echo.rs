//! Echo cancellation on open speakers, measured in GStreamer alone with the kiosk's own speaker
//! and microphone chains (`media::echo`), in one pipeline as in a call. The clinician's speech
//! (synthetic, made here) comes in 20 ms buffers (decoded Opus) from a source whose latency is
//! that of webrtcbin's jitterbuffer, plays through the speaker chain into an appsink that
//! stands for the sound card (it reports its output latency, and plays each sample at running
//! time + the pipeline's latency); a simulated room turns what it plays into what the
//! microphone hears (a little later than the pipeline knows, attenuated, with the patient's
//! speech added during a double-talk window) and pushes that, in real time and timestamped with
//! its capture time as a sound card's source does, into the microphone chain. A second room
//! without the clinician gives the patient's level alone.
//!
//! Figures: echo return loss enhancement (ERLE, dB: echo power into the DSP over what is left
//! of it at its output) for each second in which only the clinician talks, and the patient's
//! level during double talk against the patient alone. Printed with `MEASURED`.

use std::ops::Range;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use telekiosk::media::echo;
use telekiosk::profile::Processing;

const RATE: usize = echo::RATE as usize;
/// 10 ms: the DSP's own frame, and the unit the figures are computed over.
const FRAME: usize = RATE / 100;
/// The far end's latency before the speaker chain: webrtcbin's jitterbuffer default.
const JITTERBUFFER_MS: u64 = 200;
/// The sound card's output latency: it plays a sample this long after it is handed it (and says
/// so in its latency).
const OUTPUT_LATENCY_MS: u64 = 90;
/// Speaker to microphone: a delay the pipeline does not know of (air, and what the devices
/// misreport), and −6 dB.
const ROOM_DELAY_MS: usize = 10;
const ROOM_GAIN: f64 = 0.5;
/// The patient starts talking this far into the clinician's speech.
const DOUBLE_TALK_AT_S: usize = 8;
/// Frames quieter than this carry no speech (pauses between words are left out of the figures).
const ACTIVE_DBFS: f64 = -50.0;

#[test]
fn echo_is_cancelled_and_the_patient_kept_during_double_talk() {
    gst::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let speech = Speech::make(dir.path());
    let processing = Processing::default();
    let started = Instant::now();

    // Both rooms at once, each with its own probe and DSP: the same wall time as one.
    let near_at = DOUBLE_TALK_AT_S * RATE;
    let both = Room::new(speech.near.clone(), near_at);
    let alone = Room::new(speech.near.clone(), near_at);
    let both = std::thread::spawn({
        let (far, p) = (speech.far.clone(), processing.clone());
        move || run(&far, both, &p)
    });
    let alone = run(&speech.silence, alone, &processing);
    let both = both.join().unwrap();
    let elapsed = started.elapsed();

    // ERLE each second where only the clinician talks.
    let near_span = near_at..near_at + speech.near.len();
    let mut erle = vec![];
    for second in 0..both.out.len() / RATE {
        let window = second * RATE..(second + 1) * RATE;
        if overlaps(&window, &near_span) {
            eprintln!("MEASURED echo second {second}: double talk");
            continue;
        }
        let frames = active(&both.room.echo, &window);
        if frames.len() < 20 {
            eprintln!("MEASURED echo second {second}: clinician silent");
            continue;
        }
        let e = ratio_db(energy(&both.room.mic, &frames), energy(&both.out, &frames));
        eprintln!("MEASURED echo second {second}: ERLE {e:.1} dB over {} frames", frames.len());
        erle.push((second, e));
    }

    // The patient's level during double talk, against the patient alone through the DSP.
    let talk = active(&both.room.near, &near_span);
    let change = ratio_db(energy(&both.out, &talk), energy(&alone.out, &talk));
    let alone_dbfs = ratio_db(energy(&alone.out, &talk) / (talk.len() * FRAME) as f64, 1.0);
    eprintln!(
        "MEASURED double talk: patient {change:+.1} dB against alone ({alone_dbfs:.1} dBFS) over \
         {} frames; test took {elapsed:?}",
        talk.len()
    );

    let late: Vec<_> = erle.iter().filter(|(s, _)| *s >= 3).collect();
    assert!(late.len() >= 4, "too few seconds of the clinician alone after 3 s: {erle:?}");
    assert!(late.iter().all(|(_, e)| *e >= 20.0), "ERLE below 20 dB after 3 s: {erle:?}");
    assert!(talk.len() >= 50, "too little of the patient's speech: {} frames", talk.len());
    assert!(change.abs() <= 6.0, "the patient changed by {change:.1} dB during double talk");
}

/// A 16 kHz USB microphone and a 44.1 kHz stereo speaker: both chains convert to the pinned
/// rate, so the DSP and the probe agree and audio flows (a rate mismatch is a stream error).
#[test]
fn a_16_khz_microphone_negotiates_with_the_echo_canceller() {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let probe = echo::probe().unwrap();
    let speaker =
        parse("audiotestsrc is-live=true ! capsfilter caps=audio/x-raw,rate=44100,channels=2");
    let mic =
        parse("audiotestsrc is-live=true wave=pink-noise ! capsfilter caps=audio/x-raw,rate=16000");
    let out = gst_app::AppSink::builder().sync(false).build();
    let mut render = vec![speaker];
    render.extend(echo::render_chain(&probe).unwrap());
    render.push(parse("fakesink sync=true"));
    let mut capture = vec![mic];
    capture.extend(echo::capture_chain(&Processing::default(), &probe).unwrap());
    capture.push(out.clone().upcast());
    for chain in [&render, &capture] {
        chain.iter().for_each(|e| pipeline.add(e).unwrap());
        gst::Element::link_many(chain.iter()).unwrap();
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut rates = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    while rates.len() < 50 && Instant::now() < deadline {
        if let Some(message) = pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]) {
            pipeline.set_state(gst::State::Null).unwrap();
            panic!("the echo canceller failed: {message:?}");
        }
        if let Some(sample) = out.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
            rates.push(caps.get::<i32>("rate").unwrap());
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(rates.len() >= 50, "too little audio came out of the DSP: {}", rates.len());
    assert!(rates.iter().all(|&r| r == echo::RATE), "{rates:?}");
}

fn parse(description: &str) -> gst::Element {
    gst::parse::bin_from_description(description, true).unwrap().upcast()
}

/// The synthetic speech of one test, 48 kHz mono 16-bit for the patient (the room adds it
/// sample by sample); the clinician's as the synthesiser's own WAV (the speaker chain converts).
struct Speech {
    far: String,
    silence: String,
    near: Vec<i16>,
}

impl Speech {
    fn make(dir: &Path) -> Self {
        let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let (far, near_wav, silence, near_raw) =
            (path("far.wav"), path("near.wav"), path("silence.wav"), path("near.raw"));
        let clinician = "Good morning. This is the clinic calling about your appointment. \
            Please tell me how you have been feeling since last week, and whether the new \
            medicine helped with the pain in your knee. Take your time, there is no hurry.";
        tool("espeak-ng", &["-v", "en-us", "-s", "150", "-w", &far, clinician]);
        let patient = "My knee feels much better now, thank you doctor.";
        tool("espeak-ng", &["-v", "en+f3", "-s", "150", "-w", &near_wav, patient]);
        tool("sox", &["-n", "-r", "22050", "-c", "1", "-b", "16", &silence, "trim", "0", "14"]);
        let rate = RATE.to_string();
        let raw = ["-r", &rate, "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"];
        tool("sox", &[&[near_wav.as_str()][..], &raw, &[near_raw.as_str()]].concat());
        let bytes = std::fs::read(&near_raw).unwrap();
        let near = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        Self { far, silence, near }
    }
}

/// Runs a tool that makes test speech; a missing one fails the test (never skips it).
fn tool(name: &str, args: &[&str]) {
    let status = Command::new(name).args(args).status().unwrap_or_else(|e| {
        panic!("{name} is needed to make test speech (Debian package {name}): {e}")
    });
    assert!(status.success(), "{name} {args:?} failed: {status}");
}

/// What the microphone hears while the speaker plays: the speaker's sound `ROOM_DELAY_MS`
/// later at `ROOM_GAIN`, plus the patient from sample `near_at` on. Keeps each part.
struct Room {
    patient: Vec<i16>,
    near_at: usize,
    played: Vec<i16>,
    echo: Vec<i16>,
    near: Vec<i16>,
    mic: Vec<i16>,
}

impl Room {
    fn new(patient: Vec<i16>, near_at: usize) -> Self {
        Self { patient, near_at, played: vec![], echo: vec![], near: vec![], mic: vec![] }
    }

    /// The speaker played `samples`; returns what the microphone picked up meanwhile.
    fn play(&mut self, samples: &[i16]) -> Vec<i16> {
        let delay = RATE * ROOM_DELAY_MS / 1000;
        let start = self.played.len();
        self.played.extend_from_slice(samples);
        for n in start..self.played.len() {
            let echo = n.checked_sub(delay).map_or(0.0, |m| f64::from(self.played[m]) * ROOM_GAIN);
            let near = n.checked_sub(self.near_at).and_then(|k| self.patient.get(k));
            let near = near.map_or(0.0, |&v| f64::from(v));
            self.echo.push(echo as i16);
            self.near.push(near as i16);
            self.mic.push((echo + near).clamp(-32768.0, 32767.0) as i16);
        }
        self.mic[start..].to_vec()
    }
}

/// What one room run leaves: the room's parts and what came out of the DSP.
struct Run {
    room: Room,
    out: Vec<i16>,
}

/// far WAV → the kiosk's speaker chain (probe) → "loudspeaker" appsink → room → "microphone"
/// appsrc → the kiosk's microphone chain (webrtcdsp) → appsink; in real time, to the end.
fn run(far: &str, room: Room, processing: &Processing) -> Run {
    let pipeline = gst::Pipeline::new();
    let probe = echo::probe().unwrap();
    let caps = echo::pinned_caps();
    // No preroll for either sink: the microphone is live (a prerolled speaker waited forever).
    // The speaker is handed each sample its output latency before running time + latency.
    let speaker = gst_app::AppSink::builder().caps(&caps).sync(true).async_(false).build();
    speaker.set_property("render-delay", gst::ClockTime::from_mseconds(OUTPUT_LATENCY_MS));
    let mic =
        gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).is_live(true).build();
    let out = gst_app::AppSink::builder().caps(&caps).sync(false).build();

    // (wavparse's pad comes later: the converter gives the bin one to link now)
    let far = format!(
        "filesrc location={far} ! wavparse ! audiobuffersplit output-buffer-duration=1/50 \
         ! audioconvert"
    );
    let far = parse(&far);
    answer_latency_as_a_jitterbuffer(&far.static_pad("src").unwrap());
    let mut render = vec![far];
    render.extend(echo::render_chain(&probe).unwrap());
    render.push(speaker.clone().upcast());
    let mut capture: Vec<gst::Element> = vec![mic.clone().upcast()];
    capture.extend(echo::capture_chain(processing, &probe).unwrap());
    capture.push(out.clone().upcast());
    pipeline.add(&probe).unwrap();
    for chain in [&render, &capture] {
        chain.iter().filter(|e| e.parent().is_none()).for_each(|e| pipeline.add(e).unwrap());
        gst::Element::link_many(chain.iter()).unwrap();
    }

    let room = Arc::new(Mutex::new(room));
    let heard = Arc::new(Mutex::new(Vec::<i16>::new()));
    let (in_room, to_mic) = (Arc::clone(&room), mic.clone());
    // The pipeline's latency: the jitterbuffer's and the speaker's output latency.
    let latency = std::sync::OnceLock::new();
    let callbacks = gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
            let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
            // Heard when played: at its running time + the pipeline's latency.
            let segment = sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>());
            let running = segment.and_then(|s| s.to_running_time(buffer.pts()));
            let latency = *latency.get_or_init(|| {
                let mut query = gst::query::Latency::new();
                assert!(sink.query(&mut query), "the speaker's latency");
                let latency = query.result().1;
                eprintln!("MEASURED pipeline latency {latency}");
                latency
            });
            let heard_at = running.map(|t| t + latency);
            let picked_up = in_room.lock().unwrap().play(&samples(buffer));
            let bytes: Vec<u8> = picked_up.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut heard = gst::Buffer::from_mut_slice(bytes);
            heard.get_mut().ok_or(gst::FlowError::Error)?.set_pts(heard_at);
            to_mic.push_buffer(heard)
        })
        .eos(move |_| {
            let _ = mic.end_of_stream();
        })
        .build();
    speaker.set_callbacks(callbacks);
    let into = Arc::clone(&heard);
    let callbacks = gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
            into.lock().unwrap().extend(samples(sample.buffer().ok_or(gst::FlowError::Error)?));
            Ok(gst::FlowSuccess::Ok)
        })
        .build();
    out.set_callbacks(callbacks);

    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let types = [gst::MessageType::Eos, gst::MessageType::Error];
    let message = bus.timed_pop_filtered(gst::ClockTime::from_seconds(60), &types);
    pipeline.set_state(gst::State::Null).unwrap();
    match message.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        other => panic!("the room did not play to the end: {other:?}"),
    }
    drop((speaker, out));
    let room = std::mem::replace(&mut *room.lock().unwrap(), Room::new(vec![], 0));
    let out = std::mem::take(&mut *heard.lock().unwrap());
    Run { room, out }
}

/// Makes the far end's source answer latency queries as webrtcbin's does: live, and late by
/// its jitterbuffer (the echo probe asks the DSP to align by it).
fn answer_latency_as_a_jitterbuffer(pad: &gst::Pad) {
    let jitterbuffer = gst::ClockTime::from_mseconds(JITTERBUFFER_MS);
    pad.add_probe(gst::PadProbeType::QUERY_UPSTREAM | gst::PadProbeType::PULL, move |_, info| {
        if let Some(gst::PadProbeData::Query(query)) = info.data.as_mut()
            && let gst::QueryViewMut::Latency(latency) = query.view_mut()
        {
            let (_, min, max) = latency.result();
            latency.set(true, min + jitterbuffer, max.map(|m| m + jitterbuffer));
        }
        gst::PadProbeReturn::Ok
    });
}

fn samples(buffer: &gst::BufferRef) -> Vec<i16> {
    let map = buffer.map_readable().unwrap();
    map.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

// The arithmetic of the figures.

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The 10 ms frames within `window` in which `signal` is louder than `ACTIVE_DBFS`.
fn active(signal: &[i16], window: &Range<usize>) -> Vec<Range<usize>> {
    let end = window.end.min(signal.len());
    (window.start..end)
        .step_by(FRAME)
        .map(|start| start..(start + FRAME).min(end))
        .filter(|frame| {
            let mean = energy(signal, std::slice::from_ref(frame)) / frame.len() as f64;
            ratio_db(mean, 1.0) > ACTIVE_DBFS
        })
        .collect()
}

/// Sum of squares over `frames`, full scale 1.0 (samples past the end count as silence).
fn energy(samples: &[i16], frames: &[Range<usize>]) -> f64 {
    let frames = frames.iter().map(|f| f.start.min(samples.len())..f.end.min(samples.len()));
    frames.flat_map(|f| &samples[f]).map(|&s| (f64::from(s) / 32768.0).powi(2)).sum()
}

/// `a` over `b` in dB; silence counts as 1e-12 below full scale so the figure stays finite.
fn ratio_db(a: f64, b: f64) -> f64 {
    10.0 * (a.max(1e-12) / b.max(1e-12)).log10()
}

#[test]
fn erle_arithmetic() {
    let loud = vec![16300i16; FRAME * 4];
    let quiet: Vec<i16> = loud.iter().map(|s| s / 100).collect();
    let frames = active(&loud, &(0..loud.len()));
    assert_eq!(frames.len(), 4);
    assert!((ratio_db(energy(&loud, &frames), energy(&quiet, &frames)) - 40.0).abs() < 0.01);
    assert!((ratio_db(energy(&loud, &frames) / loud.len() as f64, 1.0) + 6.07).abs() < 0.01);
    assert!(active(&vec![1i16; FRAME * 4], &(0..FRAME * 4)).is_empty(), "−90 dBFS is silence");
    assert_eq!(ratio_db(0.0, 0.0), 0.0);
    assert!(overlaps(&(0..10), &(9..20)) && !overlaps(&(0..10), &(10..20)));
}

#[test]
fn the_room_delays_attenuates_and_adds_the_patient() {
    let delay = RATE * ROOM_DELAY_MS / 1000;
    let mut room = Room::new(vec![100; 10], delay + 5);
    let mut heard = room.play(&vec![1000; delay]);
    heard.extend(room.play(&[1000; 20]));
    assert!(heard[..delay].iter().all(|&s| s == 0), "echo before the delay");
    assert_eq!(&heard[delay..delay + 5], &[500; 5]);
    assert_eq!(&heard[delay + 5..delay + 15], &[600; 10]);
    assert_eq!(&heard[delay + 15..], &[500; 5]);
    assert_eq!(room.near.iter().filter(|&&s| s != 0).count(), 10);
}
