//! How a pipeline thread blocks: on its inbox and at most one clock alarm, keeping the
//! [`Activity`] count exact (a thread holds one token while it runs and none while it
//! blocks; every message sent and every alarm fired carries one). It owns nothing else.

use std::sync::Arc;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, select};

use crate::clock::{Activity, Clock, Micros};

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
    alarm: Option<(Micros, Receiver<Micros>)>,
}

impl Waiter {
    pub(crate) fn new(clock: Arc<dyn Clock>, activity: Activity) -> Waiter {
        Waiter {
            clock,
            activity,
            alarm: None,
        }
    }

    /// The alarm time set, if any.
    pub(crate) fn alarm_at(&self) -> Option<Micros> {
        self.alarm.as_ref().map(|a| a.0)
    }

    /// Set the alarm to `at` (replacing any other).
    pub(crate) fn set_alarm(&mut self, at: Micros) {
        if self.alarm_at() == Some(at) {
            return;
        }
        self.clear_alarm();
        self.alarm = Some((at, self.clock.alarm(at)));
    }

    /// Drop the alarm; a token it already delivered is given back.
    pub(crate) fn clear_alarm(&mut self) {
        if let Some((_, rx)) = self.alarm.take()
            && rx.try_recv().is_ok()
        {
            self.activity.end();
        }
    }

    /// Give up the running token and block until a message or the alarm; returns
    /// holding a token again.
    pub(crate) fn wait<T>(&mut self, rx: &Receiver<T>) -> Wake<T> {
        self.activity.end();
        let woke = match &self.alarm {
            Some((_, arx)) => {
                let arx = arx.clone();
                select! {
                    recv(rx) -> m => match m {
                        Ok(m) => Wake::Msg(m),
                        Err(_) => Wake::Closed,
                    },
                    recv(arx) -> _ => Wake::Alarm,
                }
            }
            None => match rx.recv() {
                Ok(m) => Wake::Msg(m),
                Err(_) => Wake::Closed,
            },
        };
        match woke {
            Wake::Alarm => self.alarm = None,
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
    match rx.recv_timeout(timeout) {
        Ok(v) => Some(v),
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
    }
}
