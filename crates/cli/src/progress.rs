//! A progress bar on stderr for long evaluations: shown only when stderr is a terminal and the
//! job has run for more than a second, so scripts and short jobs stay silent.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use voxcalc::Progress;

/// Shared counters between the workers and the drawing thread.
#[derive(Default)]
struct State {
    done: AtomicU64,
    total: AtomicU64,
    finished: AtomicBool,
    drawn: AtomicBool,
}

/// Progress sink that draws a bar from a background thread.
pub struct TerminalProgress {
    state: Arc<State>,
    drawer: Option<JoinHandle<()>>,
}

const DELAY: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(100);
const WIDTH: usize = 40;

impl TerminalProgress {
    /// Starts the drawing thread when `enabled` and stderr is a terminal.
    pub fn start(enabled: bool) -> TerminalProgress {
        let state = Arc::new(State::default());
        let drawer = (enabled && std::io::stderr().is_terminal()).then(|| {
            let state = state.clone();
            std::thread::spawn(move || draw_loop(&state))
        });
        TerminalProgress { state, drawer }
    }

    /// Stops drawing and clears the bar.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.state.finished.store(true, Ordering::Relaxed);
        if let Some(handle) = self.drawer.take() {
            let _ = handle.join();
        }
        if self.state.drawn.load(Ordering::Relaxed) {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r{:width$}\r", "", width = WIDTH + 30);
            let _ = err.flush();
        }
    }
}

impl Drop for TerminalProgress {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Progress for TerminalProgress {
    fn advance(&self, voxels: u64, total: u64) {
        self.state.total.store(total, Ordering::Relaxed);
        self.state.done.fetch_add(voxels, Ordering::Relaxed);
    }
}

fn draw_loop(state: &State) {
    let started = Instant::now();
    while !state.finished.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let elapsed = started.elapsed();
        if elapsed < DELAY {
            continue;
        }
        let total = state.total.load(Ordering::Relaxed);
        let done = state.done.load(Ordering::Relaxed).min(total);
        let frac = if total == 0 {
            0.0
        } else {
            done as f64 / total as f64
        };
        let filled = (frac * WIDTH as f64) as usize;
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r[{}{}] {:>3.0}% {:>6.1} s",
            "=".repeat(filled),
            " ".repeat(WIDTH - filled),
            frac * 100.0,
            elapsed.as_secs_f64()
        );
        let _ = err.flush();
        state.drawn.store(true, Ordering::Relaxed);
    }
}
