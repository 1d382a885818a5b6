//! A Slint platform with no display: the real screens rendered by Slint's software renderer
//! into memory, touched by synthetic pointer events and saved as PNG screenshots. Tests, CI and
//! the demo on a machine without a display use it; the pixels are the ones a panel would show.
//!
//! Screenshots are of the user interface and are written only when asked for (tests, demo).
//! They can never capture a visit: while a screen that shows visit video is up (the patient's
//! self-view while waiting, both pictures in a call) [`screen_png`] refuses, and so do the
//! `screenshot` control and the virtual screen built on it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{
    EventLoopProxy, Platform, PointerEventButton, WindowAdapter, WindowEvent,
    duration_until_next_timer_update, update_timers_and_animations,
};
use slint::{EventLoopError, LogicalPosition, PhysicalSize, PlatformError, Rgb8Pixel};

type Job = Box<dyn FnOnce() + Send>;

/// Jobs posted to the UI thread, and the quit flag.
#[derive(Default)]
struct Inbox {
    state: Mutex<(VecDeque<Job>, bool)>,
    wake: Condvar,
}

struct Proxy(Arc<Inbox>);

impl EventLoopProxy for Proxy {
    fn quit_event_loop(&self) -> Result<(), EventLoopError> {
        self.0.state.lock().map_err(|_| EventLoopError::EventLoopTerminated)?.1 = true;
        self.0.wake.notify_one();
        Ok(())
    }

    fn invoke_from_event_loop(&self, job: Job) -> Result<(), EventLoopError> {
        self.0.state.lock().map_err(|_| EventLoopError::EventLoopTerminated)?.0.push_back(job);
        self.0.wake.notify_one();
        Ok(())
    }
}

/// The one window and its pixels, owned by the UI thread.
struct Screen {
    window: Rc<MinimalSoftwareWindow>,
    pixels: RefCell<Vec<Rgb8Pixel>>,
    width: u32,
    height: u32,
}

thread_local! {
    static SCREEN: RefCell<Option<Rc<Screen>>> = const { RefCell::new(None) };
}

impl Screen {
    fn draw(&self) {
        let mut pixels = self.pixels.borrow_mut();
        self.window.draw_if_needed(|renderer| {
            renderer.render(pixels.as_mut_slice(), self.width as usize);
        });
    }
}

struct HeadlessPlatform {
    screen: Rc<Screen>,
    inbox: Arc<Inbox>,
}

impl Platform for HeadlessPlatform {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        Ok(self.screen.window.clone())
    }

    fn new_event_loop_proxy(&self) -> Option<Box<dyn EventLoopProxy>> {
        Some(Box::new(Proxy(self.inbox.clone())))
    }

    fn run_event_loop(&self) -> Result<(), PlatformError> {
        loop {
            update_timers_and_animations();
            let jobs = {
                let mut state = self.inbox.state.lock().map_err(|_| PlatformError::NoPlatform)?;
                if state.1 {
                    return Ok(());
                }
                std::mem::take(&mut state.0)
            };
            for job in jobs {
                job();
            }
            self.screen.draw();
            let wait = if self.screen.window.has_active_animations() {
                Duration::from_millis(16)
            } else {
                duration_until_next_timer_update()
                    .unwrap_or(Duration::from_millis(250))
                    .min(Duration::from_millis(250))
            };
            let state = self.inbox.state.lock().map_err(|_| PlatformError::NoPlatform)?;
            if state.0.is_empty() && !state.1 {
                let _ = self.inbox.wake.wait_timeout(state, wait);
            }
        }
    }
}

/// Installs the headless platform with a `width`×`height` screen. Call before creating windows.
pub fn install(width: u32, height: u32) -> Result<(), PlatformError> {
    let window = MinimalSoftwareWindow::new(RepaintBufferType::ReusedBuffer);
    window.set_size(PhysicalSize::new(width, height));
    let pixels = RefCell::new(vec![Rgb8Pixel::new(0, 0, 0); (width * height) as usize]);
    let screen = Rc::new(Screen { window, pixels, width, height });
    SCREEN.with(|s| *s.borrow_mut() = Some(screen.clone()));
    slint::platform::set_platform(Box::new(HeadlessPlatform { screen, inbox: Arc::default() }))
        .map_err(|e| PlatformError::Other(e.to_string()))
}

fn with_screen<T>(f: impl FnOnce(&Screen) -> T) -> Option<T> {
    SCREEN.with(|s| s.borrow().as_ref().map(|screen| f(screen)))
}

/// Touches the screen at (x, y) logical pixels, as a finger would: move, press, release.
/// Must run on the UI thread.
pub fn tap(x: f32, y: f32) {
    with_screen(|screen| {
        let position = LogicalPosition::new(x, y);
        let button = PointerEventButton::Left;
        let w = screen.window.window();
        w.dispatch_event(WindowEvent::PointerMoved { position });
        w.dispatch_event(WindowEvent::PointerPressed { position, button });
        w.dispatch_event(WindowEvent::PointerReleased { position, button });
        w.dispatch_event(WindowEvent::PointerExited);
        update_timers_and_animations();
    });
}

/// Why the screen was not captured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// A screen with visit video is up; the screen's size is given for a placeholder.
    #[error("{REFUSED}")]
    Visit { width: u32, height: u32 },
    #[error("{0}")]
    Failed(String),
}

/// Why a capture during a visit is refused, as the status line says it.
pub const REFUSED: &str = "a visit's video is on screen, and screenshots never capture a visit";

/// Renders the current screen and writes it as a PNG file; refused during a visit. Must run on
/// the UI thread.
pub fn screenshot(path: &Path) -> Result<(), CaptureError> {
    let png = screen_png()?;
    std::fs::write(path, png)
        .map_err(|e| CaptureError::Failed(format!("cannot write {}: {e}", path.display())))
}

/// Renders the current screen as PNG bytes, in memory; refused during a visit. Must run on the
/// UI thread.
pub fn screen_png() -> Result<Vec<u8>, CaptureError> {
    with_screen(|screen| {
        if super::video_on_screen() || crate::tech::preview_on() {
            return Err(CaptureError::Visit { width: screen.width, height: screen.height });
        }
        screen.window.request_redraw();
        screen.draw();
        let pixels = screen.pixels.borrow();
        let rgb: Vec<u8> = pixels.iter().flat_map(|p| [p.r, p.g, p.b]).collect();
        encode_png(screen.width, screen.height, &rgb).map_err(CaptureError::Failed)
    })
    .unwrap_or_else(|| Err(CaptureError::Failed("no headless screen on this thread".into())))
}

fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| format!("PNG header: {e}"))?;
    writer.write_image_data(rgb).map_err(|e| format!("PNG data: {e}"))?;
    writer.finish().map_err(|e| format!("PNG end: {e}"))?;
    Ok(out)
}
