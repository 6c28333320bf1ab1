//! How operator commands print: aligned tables for people, JSON (`--json`) for programs,
//! and a progress bar on stderr when it is a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::CliError;

/// Rows under headers, each column as wide as its widest cell.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |cell: &str| cell.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(width(cell));
                }
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, cell) in cells.enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(width(cell));
                text.extend(std::iter::repeat_n(' ', pad));
            }
            // The last column's padding is noise at the end of a line.
            text.truncate(text.trim_end().len());
            text.push('\n');
            text
        };
        let mut out = line(&mut self.headers.iter().map(String::as_str));
        for row in &self.rows {
            out.push_str(&line(&mut row.iter().map(String::as_str)));
        }
        out
    }
}

/// Writes to stdout; a closed pipe (`| head`) is an error to report, not a panic.
pub fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

pub fn emit_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
    text.push('\n');
    emit(&text)
}

/// An instant as tables show it: UTC, to the second.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// A duration in seconds as people read it: `42s`, `5m12s`, `3h04m`, `2d05h`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal (hidden under systemd, in
/// CI and in pipes).
pub struct Progress(ProgressBar);

impl Progress {
    pub fn on_stderr() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self(ProgressBar::with_draw_target(None, target))
    }

    pub fn spinner(&self, message: &str) {
        self.0.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.0.set_message(message.to_owned());
        self.0.enable_steady_tick(Duration::from_millis(120));
    }

    /// Starts a phase of `len` steps.
    pub fn phase(&self, message: &str, len: usize) {
        self.0.disable_steady_tick();
        self.0.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {human_pos}/{human_len} ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.0.set_message(message.to_owned());
        self.0.set_length(len as u64);
        self.0.set_position(0);
    }

    pub fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    pub fn set(&self, n: usize) {
        self.0.set_position(n as u64);
    }

    pub fn done(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let mut table = Table::new(&["ID", "STATE"]);
        table.row(vec!["1".into(), "pending".into()]);
        table.row(vec!["12345".into(), "é".into()]);
        assert_eq!(table.render(), "ID     STATE\n1      pending\n12345  é\n");
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(42.4), "42s");
        assert_eq!(age(312.0), "5m12s");
        assert_eq!(age(3.0 * 3600.0 + 240.0), "3h04m");
        assert_eq!(age(2.0 * 86400.0 + 5.0 * 3600.0), "2d05h");
    }
}
