//! Notices held back from a channel until a wall-clock time: an escalation's wait
//! ([`crate::escalation`]) or a silence's end ([`crate::hushed`]).
//!
//! What both kinds need of what they hold is the same: which notice, for which channel, when it
//! is next due, and taking out those of a notice, of a record, or all of them. Each kind adds how
//! a notice is held and when it goes. Wall-clock time, not `Instant`: a due time must mean the same
//! in every watcher. A few per open outage at most, so a plain list.

use std::time::SystemTime;

use crate::alert::Alert;

/// One notice held back from one channel.
pub trait Waiting {
    /// As it will be handed to the channel: with its ticket, or its key once recorded.
    fn alert(&self) -> &Alert;
    fn channel(&self) -> &str;
    /// When it is due (to be released, or looked at again).
    fn at(&self) -> SystemTime;
}

/// The notices held back, in no particular order.
#[derive(Clone, Debug)]
pub struct Holding<T> {
    held: Vec<T>,
}

impl<T> Default for Holding<T> {
    fn default() -> Holding<T> {
        Holding { held: Vec::new() }
    }
}

impl<T: Waiting> Holding<T> {
    /// The one held for `channel` of this notice (by its notice id), if any.
    pub(crate) fn find_mut(&mut self, notice_id: &str, channel: &str) -> Option<&mut T> {
        self.held
            .iter_mut()
            .find(|h| h.channel() == channel && h.alert().notice_id() == notice_id)
    }

    pub(crate) fn push(&mut self, held: T) {
        self.held.push(held);
    }

    /// Those `pred` picks, removed.
    pub fn take_where(&mut self, pred: impl FnMut(&T) -> bool) -> Vec<T> {
        let (taken, keep) = std::mem::take(&mut self.held).into_iter().partition(pred);
        self.held = keep;
        taken
    }

    /// Every one, removed.
    pub fn take_all(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held)
    }

    /// Held again as they were (taken by [`Holding::take_all`]).
    pub fn restore(&mut self, held: Vec<T>) {
        self.held.extend(held);
    }

    /// Those of this notice (by its notice id), removed: another watcher reported it.
    pub fn of_notice(&mut self, notice_id: &str) -> Vec<T> {
        self.take_where(|h| h.alert().notice_id() == notice_id)
    }

    /// When the next is due.
    pub fn next(&self) -> Option<SystemTime> {
        self.held.iter().map(Waiting::at).min()
    }

    /// Whether `channel` still waits for this notice (by its notice id).
    pub fn holds(&self, notice_id: &str, channel: &str) -> bool {
        self.held
            .iter()
            .any(|h| h.channel() == channel && h.alert().notice_id() == notice_id)
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}
