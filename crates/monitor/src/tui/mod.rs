//! The live terminal dashboard (ratatui + crossterm), in-process or attached to endpoints.
//!
//! The UI thread only draws and reads keys; scrapes happen on a fetcher thread, so a slow
//! endpoint never freezes the keys, and the in-process VM never waits for the screen.

mod app;
mod data;
mod fmt;
mod keys;
mod log;
mod once;
mod stats;
mod terminal;
mod views;

#[cfg(test)]
mod fixture;

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, TryRecvError};
use crossterm::event::{self, Event, KeyEventKind};

pub use log::{run_log, LogOptions};
pub use once::{snapshot_text, snapshot_text_opts, snapshot_text_with};

use crate::{Error, Fetched, Result, Source};
use app::App;

/// Dashboard options.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// Time between scrapes (changeable with `+`/`-`); at least 100 ms.
    pub refresh: Duration,
}

impl Default for TuiOptions {
    fn default() -> Self {
        TuiOptions {
            refresh: Duration::from_secs(1),
        }
    }
}

/// Longest wait for a key before checking `stop` and the fetcher again.
const TICK: Duration = Duration::from_millis(100);

/// Runs the dashboard on this thread until `q`/Ctrl-C, or until `stop` receives or
/// disconnects (pass `crossbeam_channel::never()` to ignore it). The terminal is restored
/// on return, on error and on panic; a panic in any thread ends the dashboard with
/// [`Error::Panicked`].
pub fn run_tui<T>(source: Source, opts: TuiOptions, stop: Receiver<T>) -> Result<()> {
    let (requests, results) = spawn_fetcher(source.clone())?;
    let mut guard = terminal::Guard::enter()?;
    let mut app = App::new(source.describe(), opts.refresh);
    let mut next_fetch = Instant::now();
    let mut outstanding = false;
    let mut dirty = true;
    loop {
        if !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
            return Ok(());
        }
        if !terminal::active() {
            // The panic hook restored the terminal.
            return Err(Error::Panicked);
        }
        let now = Instant::now();
        if !app.paused && !outstanding && now >= next_fetch {
            outstanding = requests.try_send(()).is_ok();
            next_fetch = now + app.refresh;
        }
        loop {
            match results.try_recv() {
                Ok(fetched) => {
                    app.on_fetched(fetched);
                    outstanding = false;
                    dirty = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(Error::Panicked),
            }
        }
        if dirty {
            guard
                .terminal
                .draw(|f| views::draw(f, &app))
                .map_err(Error::Terminal)?;
            dirty = false;
        }
        let wait = next_fetch
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(10), TICK);
        if event::poll(wait).map_err(Error::Terminal)? {
            match event::read().map_err(Error::Terminal)? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    if app.on_key(k) {
                        return Ok(());
                    }
                    dirty = true;
                }
                Event::Resize(..) => {
                    guard.terminal.autoresize().map_err(Error::Terminal)?;
                    dirty = true;
                }
                _ => {}
            }
        }
    }
}

/// A thread that scrapes `source` once per request; it ends when the requests close.
fn spawn_fetcher(source: Source) -> Result<(crossbeam_channel::Sender<()>, Receiver<Fetched>)> {
    let (req_tx, req_rx) = bounded::<()>(1);
    let (res_tx, res_rx) = bounded::<Fetched>(1);
    thread::Builder::new()
        .name("tui-fetch".into())
        .spawn(move || {
            while req_rx.recv().is_ok() {
                if res_tx.send(source.fetch()).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| Error::Thread("tui-fetch", e))?;
    Ok((req_tx, res_rx))
}
