//! Progress on stderr: indicatif spinners and bars when stderr is a
//! terminal, plain lines otherwise (logs, CI, tests), nothing with `--quiet`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing (`--quiet`).
    Quiet,
    /// One line when a step starts and one when it ends.
    Lines,
    /// Animated spinners and bars.
    Bars,
}

/// Progress reporter shared by the commands.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    mode: Mode,
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise, nothing when quiet.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        Progress { mode }
    }

    /// The mode in use.
    #[allow(dead_code)]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A note on stderr (not shown with `--quiet`).
    pub fn note(&self, message: impl AsRef<str>) {
        if self.mode != Mode::Quiet {
            eprintln!("{}", message.as_ref());
        }
    }

    /// What a scoring run's reader noted, and how many rows held a value
    /// beyond its feature's training range (both only informative).
    pub fn scoring_notes(&self, notes: &[String], out_of_range_rows: usize) {
        for note in notes {
            self.note(format!("note: {note}"));
        }
        if out_of_range_rows > 0 {
            self.note(format!(
                "note: {out_of_range_rows} rows have a value outside its feature's training range (scored, but the model has not seen such values)"
            ));
        }
    }

    /// Start a step of unknown length (a spinner).
    pub fn step(&self, message: impl Into<String>) -> Step {
        self.start(message.into(), "{spinner} {msg} [{elapsed}]")
    }

    /// Start a step counting items of unknown total (rows streamed).
    pub fn counter(&self, message: impl Into<String>) -> Step {
        self.start(
            message.into(),
            "{spinner} {msg}: {human_pos} rows ({per_sec}) [{elapsed}]",
        )
    }

    fn start(&self, message: String, template: &str) -> Step {
        let bar = match self.mode {
            Mode::Bars => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
                bar.set_message(message);
                bar.enable_steady_tick(Duration::from_millis(100));
                Some(bar)
            }
            Mode::Lines => {
                eprintln!("{message}...");
                None
            }
            Mode::Quiet => None,
        };
        Step {
            mode: self.mode,
            bar,
            started: Instant::now(),
        }
    }
}

/// A running step; finish it with [`Step::done`] (or drop it on error).
pub struct Step {
    mode: Mode,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Step {
    /// Advance a counting step.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Finish with a summary line, e.g. `trained model 3f2a… (1.2 s)`.
    pub fn done(self, message: impl AsRef<str>) {
        let elapsed = self.started.elapsed();
        let line = format!("{} ({})", message.as_ref(), human_duration(elapsed));
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.finish_and_clear(),
            (None, Mode::Quiet) => return,
            (None, _) => {}
        }
        if self.mode != Mode::Quiet {
            eprintln!("{line}");
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
    }
}

/// `0.42 s`, `3.1 s`, `2 min 5 s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(420)), "0.42 s");
        assert_eq!(human_duration(Duration::from_millis(3140)), "3.1 s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2 min 5 s");
    }
}
