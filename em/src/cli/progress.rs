//! Progress bars on stderr for the library's [`Progress`] reports; hidden when stderr is
//! not a terminal or when the command is quiet.

use std::sync::Mutex;

use entmin::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// One bar per phase.
pub struct Bars {
    visible: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new(visible: bool) -> Bars {
        Bars { visible, bar: Mutex::new(None) }
    }

    fn with(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            f(bar);
        }
    }
}

impl Bars {
    /// Print `text` on its own line above the bar, or plainly on stderr when the bar is
    /// hidden (not a terminal), so that logs keep it.
    pub fn line(&self, text: &str) {
        match self.bar.lock().expect("progress lock").as_ref() {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }
}

impl Progress for Bars {
    fn begin(&self, label: &str, total: u64, done: u64) {
        let bar = if self.visible { ProgressBar::new(total) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>17} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar.set_position(done);
        *self.bar.lock().expect("progress lock") = Some(bar);
    }

    fn advance(&self, n: u64, status: &str) {
        self.with(|bar| {
            bar.inc(n);
            bar.set_message(status.to_string());
        });
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish();
        }
    }

    fn note(&self, text: &str) {
        eprintln!("[note: {text}]");
    }
}
