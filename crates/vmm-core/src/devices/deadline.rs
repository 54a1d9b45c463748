//! A device timer thread that blocks until a deadline (a condition variable with a
//! timeout, never a sleep loop) and is stopped and joined at teardown.
//!
//! The device owns the schedule: whenever its state changes it calls
//! [`Deadline::set`] with the next time (on its [`Clock`]) something must happen; the
//! thread wakes then and calls the device's callback, which re-arms as needed.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::clock::Clock;

#[derive(Default)]
struct Sched {
    deadline: Option<u64>,
    stop: bool,
}

/// The schedule a device sets and its timer thread waits on.
#[derive(Default)]
pub struct Deadline {
    sched: Mutex<Sched>,
    cv: Condvar,
}

impl Deadline {
    /// Arms the timer for `at` (clock nanoseconds), or disarms it with `None`.
    pub fn set(&self, at: Option<u64>) {
        let mut s = self.sched.lock().unwrap_or_else(|e| e.into_inner());
        if s.deadline != at {
            s.deadline = at;
            self.cv.notify_one();
        }
    }

    /// The armed deadline.
    pub fn get(&self) -> Option<u64> {
        self.sched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deadline
    }
}

/// The thread; dropping it (or [`TimerThread::stop`]) stops and joins it.
pub struct TimerThread {
    deadline: Arc<Deadline>,
    join: Option<JoinHandle<()>>,
}

impl TimerThread {
    /// Spawns `name`, calling `fire` whenever `deadline` passes on `clock`. `fire` runs
    /// with no lock of the schedule held, so it may call [`Deadline::set`].
    pub fn spawn(
        name: &str,
        clock: Arc<dyn Clock>,
        deadline: Arc<Deadline>,
        fire: impl Fn() + Send + 'static,
    ) -> std::io::Result<TimerThread> {
        let d = deadline.clone();
        let join = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&d, clock.as_ref(), fire))?;
        Ok(TimerThread {
            deadline,
            join: Some(join),
        })
    }

    /// Stops the thread and waits for it to end.
    pub fn stop(&mut self) {
        {
            let mut s = self
                .deadline
                .sched
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            s.stop = true;
            self.deadline.cv.notify_one();
        }
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for TimerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(d: &Deadline, clock: &dyn Clock, fire: impl Fn()) {
    let mut s = d.sched.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if s.stop {
            return;
        }
        match s.deadline {
            None => s = d.cv.wait(s).unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                let now = clock.now_ns();
                if now < at {
                    let wait = Duration::from_nanos(at - now);
                    s =
                        d.cv.wait_timeout(s, wait)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    continue;
                }
                s.deadline = None;
                drop(s);
                fire();
                s = d.sched.lock().unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::clock::HostClock;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    #[test]
    fn fires_at_the_deadline_rearms_and_stops_promptly() {
        let clock: Arc<dyn Clock> = Arc::new(HostClock::default());
        let d = Arc::new(Deadline::default());
        let n = Arc::new(AtomicU32::new(0));
        let (n2, d2, c2) = (n.clone(), d.clone(), clock.clone());
        let mut t = TimerThread::spawn("t", clock.clone(), d.clone(), move || {
            if n2.fetch_add(1, Ordering::SeqCst) < 2 {
                d2.set(Some(c2.now_ns() + 5_000_000));
            }
        })
        .unwrap();
        let start = Instant::now();
        d.set(Some(clock.now_ns() + 5_000_000));
        while n.load(Ordering::SeqCst) < 3 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "timer never fired"
            );
            std::thread::yield_now();
        }
        assert!(start.elapsed() >= Duration::from_millis(15));
        assert_eq!(d.get(), None);
        // Armed far away: stop still returns at once.
        d.set(Some(clock.now_ns() + 3_600_000_000_000));
        let s = Instant::now();
        t.stop();
        assert!(s.elapsed() < Duration::from_secs(1));
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }
}
