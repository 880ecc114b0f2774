//! How a pipeline thread blocks: on its inbox and at most one clock alarm, keeping the
//! [`Activity`] count exact (a thread holds one token while it runs and none while it
//! blocks; every message sent and every alarm fired carries one). It owns nothing else.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TryRecvError, select};

use crate::clock::{Activity, Alarm, Clock, Micros};

/// What woke a thread.
pub(crate) enum Wake<T> {
    /// A message from the inbox.
    Msg(T),
    /// The alarm fired.
    Alarm,
    /// Every sender is gone.
    Closed,
}

/// A thread's blocking point.
pub(crate) struct Waiter {
    clock: Arc<dyn Clock>,
    activity: Activity,
    /// The thread's alarm, made on the first [`Waiter::set_alarm`] and set again for
    /// every later one (no channel per setting).
    alarm: Option<Alarm>,
    /// What the alarm is set to, until it fires or is cleared.
    at: Option<Micros>,
}

impl Waiter {
    pub(crate) fn new(clock: Arc<dyn Clock>, activity: Activity) -> Waiter {
        Waiter {
            clock,
            activity,
            alarm: None,
            at: None,
        }
    }

    /// Set the alarm to `at` (replacing any other; a token the other already delivered
    /// is given back).
    pub(crate) fn set_alarm(&mut self, at: Micros) {
        if self.at == Some(at) {
            return;
        }
        let _span = super::probe::Span::enter(super::probe::Inside::Clock);
        let clock = &self.clock;
        let alarm = self.alarm.get_or_insert_with(|| clock.new_alarm());
        if alarm.set(at) {
            self.activity.end();
        }
        self.at = Some(at);
    }

    /// Cancel the alarm; a token it already delivered is given back.
    pub(crate) fn clear_alarm(&mut self) {
        if self.at.take().is_some()
            && let Some(alarm) = &mut self.alarm
            && alarm.cancel()
        {
            self.activity.end();
        }
    }

    /// Give up the running token and block until a message or the alarm; returns
    /// holding a token again.
    pub(crate) fn wait<T>(&mut self, rx: &Receiver<T>) -> Wake<T> {
        self.activity.end();
        let woke = match (&self.alarm, self.at) {
            (Some(alarm), Some(_)) => {
                let arx = alarm.receiver();
                let _span = super::probe::Span::enter(super::probe::Inside::Clock);
                select! {
                    recv(rx) -> m => match m {
                        Ok(m) => Wake::Msg(m),
                        Err(_) => Wake::Closed,
                    },
                    recv(arx) -> _ => Wake::Alarm,
                }
            }
            _ => match rx.recv() {
                Ok(m) => Wake::Msg(m),
                Err(_) => Wake::Closed,
            },
        };
        match woke {
            Wake::Alarm => self.at = None,
            Wake::Closed => self.activity.begin(),
            Wake::Msg(_) => {}
        }
        woke
    }

    /// A further message without blocking (its token is given back at once: the
    /// thread is running anyway).
    pub(crate) fn try_next<T>(&self, rx: &Receiver<T>) -> Option<T> {
        match rx.try_recv() {
            Ok(m) => {
                self.activity.end();
                Some(m)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }
}

/// Send with a token for the receiver; the token is taken back if the send fails.
pub(crate) fn send<T>(activity: &Activity, tx: &Sender<T>, msg: T) -> bool {
    activity.begin();
    if tx.send(msg).is_err() {
        activity.end();
        return false;
    }
    true
}

/// Wait for a reply (no token: the waiting thread keeps its own).
pub(crate) fn reply<T>(rx: &Receiver<T>, timeout: std::time::Duration) -> Option<T> {
    rx.recv_timeout(timeout).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;

    /// Every wake carries exactly one token: a thread that handles a message and an
    /// alarm and blocks again leaves the count at zero.
    #[test]
    fn tokens_balance_over_messages_and_alarms() {
        let activity = Activity::tracked();
        let clock = VirtualClock::with_activity(0, activity.clone());
        let (tx, rx) = crossbeam_channel::bounded::<u32>(8);
        activity.begin(); // the thread's own running token
        let a2 = activity.clone();
        let c2: Arc<dyn Clock> = Arc::new(clock.clone());
        let worker = std::thread::spawn(move || {
            let mut w = Waiter::new(c2, a2);
            w.set_alarm(Micros(1_000));
            let mut seen = Vec::new();
            loop {
                match w.wait(&rx) {
                    Wake::Msg(m) => {
                        seen.push(m);
                        while let Some(m) = w.try_next(&rx) {
                            seen.push(m);
                        }
                    }
                    Wake::Alarm => seen.push(0),
                    Wake::Closed => break,
                }
            }
            w.clear_alarm();
            seen
        });
        assert!(send(&activity, &tx, 1));
        assert!(send(&activity, &tx, 2));
        assert!(activity.wait_idle(std::time::Duration::from_secs(5)));
        clock.advance_to(Micros(1_000));
        assert!(activity.wait_idle(std::time::Duration::from_secs(5)));
        assert!(send(&activity, &tx, 3));
        assert!(activity.wait_idle(std::time::Duration::from_secs(5)));
        drop(tx);
        let seen = worker.join().unwrap_or_default();
        assert_eq!(seen, vec![1, 2, 0, 3]);
        // The worker ended on Closed holding its token again.
        assert_eq!(activity.count(), 1);
    }
}
