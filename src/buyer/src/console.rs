//! Where a buyer's command reports progress: stderr, with a line updated in
//! place when stderr is a terminal.

use std::io::{IsTerminal, Write};

/// Progress output. Lines are permanent; a live line (upload progress) is
/// redrawn in place on a terminal and left out elsewhere, so logs and tests
/// see only the permanent lines.
pub struct Console {
    sink: Box<dyn Write + Send>,
    terminal: bool,
    live_shown: bool,
}

impl Console {
    /// Progress on the process's stderr.
    pub fn stderr() -> Console {
        Console {
            sink: Box::new(std::io::stderr()),
            terminal: std::io::stderr().is_terminal(),
            live_shown: false,
        }
    }

    /// Progress into any writer (never treated as a terminal).
    pub fn to_writer(sink: impl Write + Send + 'static) -> Console {
        Console {
            sink: Box::new(sink),
            terminal: false,
            live_shown: false,
        }
    }

    /// Prints a permanent line. Progress is best effort: a closed stderr
    /// must not fail the command.
    pub fn line(&mut self, text: impl std::fmt::Display) {
        self.clear_live();
        let _ = writeln!(self.sink, "{text}");
        let _ = self.sink.flush();
    }

    /// Shows `text` as the live line (terminals only).
    pub fn live(&mut self, text: impl std::fmt::Display) {
        if self.terminal {
            let _ = write!(self.sink, "\r\x1b[2K{text}");
            let _ = self.sink.flush();
            self.live_shown = true;
        }
    }

    fn clear_live(&mut self) {
        if self.live_shown {
            let _ = write!(self.sink, "\r\x1b[2K");
            self.live_shown = false;
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.clear_live();
        let _ = self.sink.flush();
    }
}
