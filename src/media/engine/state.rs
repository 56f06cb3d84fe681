//! The engine's consumer bookkeeping, kept apart from GStreamer: which consumers are wanted, where
//! each is in its life, which start their reports belong to, and how a stop waits for them.
//!
//! Like rumqttc's `state.rs` beside its event loop, [`State`] only changes itself: every call
//! returns the [`Effect`]s the engine then carries out on the pipelines, and time comes in as an
//! argument. The engine answers two effects back (a start that failed, a consumer that had
//! nothing to finalise), so all the rules stay here and are tested without a pipeline.
//!
//! It is generic over the consumer's id (`Id`) and over what the engine keeps per consumer
//! (`T`: its spec, the consumer and its branches), so the tests use plain values for both.
//!
//! Over 600 lines with its tests: the rules are under 400, and the rest is one test per rule.

use crate::media::consumer::ConsumerEvent;
use crate::media::error::MediaError;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long consumers may take to finish (a recorder finalising its segment) on a stop.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do once the current capture has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Report STOPPED and end the task.
    Exit,
    /// Build and start again.
    Restart,
}

/// Where a consumer is in its life under the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Wanted, waiting for capture to play.
    Idle,
    /// Started in the current capture.
    Running,
    /// Asked to finish; waiting for its `Finished`.
    Finishing {
        /// Gone afterwards (detached, or the engine is exiting); else idle until capture plays
        /// again (a restart).
        remove: bool,
    },
}

struct Entry<T> {
    item: T,
    phase: Phase,
    /// Which start its reports belong to; older ones are ignored.
    generation: u64,
}

struct Stop {
    after: After,
    deadline: Instant,
}

/// What the engine must do for the bookkeeping to become true.
#[derive(Debug, PartialEq)]
pub enum Effect<Id, T> {
    /// Start the consumer on the running capture; its reports carry `generation`. A start that
    /// fails is answered with [`State::open_failed`].
    Open {
        id: Id,
        /// What its reporter tags its reports with.
        generation: u64,
    },
    /// Detach its branches and ask it to finish. One that has nothing to finalise is answered at
    /// once with [`State::event`]`(id, generation, Finished)`, as if it had reported it.
    Finish { id: Id, generation: u64 },
    /// Stop it at once (its branches go with the pipeline); it stays wanted and starts again
    /// when capture plays.
    Shutdown(Id),
    /// Detach its branches and stop it at once: it is no longer wanted.
    Close(T),
    /// Pass on to the agent as a [`MediaNotice::Consumer`](crate::media::MediaNotice).
    Notice(Id, ConsumerEvent),
}

/// A stop that has run its course.
#[derive(Debug, PartialEq)]
pub struct Stopped<Id, T> {
    pub after: After,
    /// True when consumers were still finishing at the deadline and were given up on.
    pub gave_up: bool,
    /// Tearing down what is left of the consumers (the capture is the engine's to release).
    pub effects: Vec<Effect<Id, T>>,
}

/// The consumers and the capture's life as far as they care: playing or not, stopping or not.
pub struct State<Id, T> {
    /// Every consumer by id; they outlive capture restarts.
    consumers: HashMap<Id, Entry<T>>,
    generation: u64,
    playing: bool,
    stop: Option<Stop>,
}

impl<Id: Eq + Hash + Clone, T> Default for State<Id, T> {
    fn default() -> Self {
        State {
            consumers: HashMap::new(),
            generation: 0,
            playing: false,
            stop: None,
        }
    }
}

impl<Id: Eq + Hash + Clone, T> State<Id, T> {
    /// True once capture has delivered its first frame (or has no video to wait for), until it
    /// is torn down.
    pub fn playing(&self) -> bool {
        self.playing
    }

    /// True while a stop is under way.
    pub fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// When a stop under way gives up on consumers that have not finished.
    pub fn stop_deadline(&self) -> Option<Instant> {
        self.stop.as_ref().map(|s| s.deadline)
    }

    /// What the engine keeps for consumer `id`.
    pub fn item_mut(&mut self, id: &Id) -> Option<&mut T> {
        self.consumers.get_mut(id).map(|e| &mut e.item)
    }

    /// The consumers started in the current capture (for their housekeeping).
    pub fn running_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.consumers
            .values_mut()
            .filter(|e| e.phase == Phase::Running)
            .map(|e| &mut e.item)
    }

    /// Runs a consumer under `id` from now on, replacing (closing) any other of that id, and
    /// starts it when capture plays. One there already for which `same` holds is left alone,
    /// unless it is on its way out after a detach; `make` is called only when one is needed.
    pub fn attach(
        &mut self,
        id: Id,
        same: impl FnOnce(&T) -> bool,
        make: impl FnOnce() -> T,
    ) -> Vec<Effect<Id, T>> {
        if let Some(old) = self.consumers.get(&id) {
            if old.phase != (Phase::Finishing { remove: true }) && same(&old.item) {
                return Vec::new();
            }
        }
        let mut effects = Vec::new();
        if let Some(old) = self.consumers.remove(&id) {
            effects.push(Effect::Close(old.item));
        }
        self.consumers.insert(
            id.clone(),
            Entry {
                item: make(),
                phase: Phase::Idle,
                generation: 0,
            },
        );
        if self.playing && self.stop.is_none() {
            effects.extend(self.open(id));
        }
        effects
    }

    /// Starts consumer `id` under a new generation, so that reports of its earlier starts (and
    /// of a consumer it replaced) are ignored.
    fn open(&mut self, id: Id) -> Option<Effect<Id, T>> {
        let entry = self.consumers.get_mut(&id)?;
        self.generation += 1;
        entry.generation = self.generation;
        entry.phase = Phase::Running;
        Some(Effect::Open {
            id,
            generation: self.generation,
        })
    }

    /// Consumer `id` could not start in `generation`: it is reported failed and dropped, and
    /// nothing else is disturbed.
    pub fn open_failed(
        &mut self,
        id: &Id,
        generation: u64,
        error: MediaError,
    ) -> Vec<Effect<Id, T>> {
        if self
            .consumers
            .get(id)
            .is_none_or(|e| e.generation != generation)
        {
            return Vec::new();
        }
        self.remove(id, ConsumerEvent::Failed(error))
    }

    /// Asks consumer `id` to finish; it is dropped and reported finished once it has. An id with
    /// nothing under it is reported finished at once: it is as finished as it will get.
    pub fn detach(&mut self, id: Id) -> Vec<Effect<Id, T>> {
        let Some(entry) = self.consumers.get_mut(&id) else {
            return vec![Effect::Notice(id, ConsumerEvent::Finished)];
        };
        match entry.phase {
            Phase::Running => {
                entry.phase = Phase::Finishing { remove: true };
                vec![Effect::Finish {
                    id,
                    generation: entry.generation,
                }]
            }
            Phase::Finishing { .. } => {
                entry.phase = Phase::Finishing { remove: true };
                Vec::new()
            }
            Phase::Idle => self.remove(&id, ConsumerEvent::Finished),
        }
    }

    /// What consumer `id` reported in its `generation`-th start. Reports of an earlier start, or
    /// of a consumer since replaced or dropped, are ignored. `Finished` of a consumer finishing
    /// for a restart leaves it idle and unreported; otherwise `Finished` and `Failed` drop it.
    pub fn event(&mut self, id: Id, generation: u64, event: ConsumerEvent) -> Vec<Effect<Id, T>> {
        let Some(entry) = self.consumers.get_mut(&id) else {
            return Vec::new();
        };
        if entry.generation != generation {
            return Vec::new();
        }
        match event {
            ConsumerEvent::Finished if entry.phase == (Phase::Finishing { remove: false }) => {
                entry.phase = Phase::Idle;
                vec![Effect::Shutdown(id)]
            }
            ConsumerEvent::Finished => self.remove(&id, event),
            ConsumerEvent::Failed(_) => self.remove(&id, event),
            other => vec![Effect::Notice(id, other)],
        }
    }

    /// Drops consumer `id`, closing it, and tells the agent `why`.
    fn remove(&mut self, id: &Id, why: ConsumerEvent) -> Vec<Effect<Id, T>> {
        match self.consumers.remove_entry(id) {
            Some((id, entry)) => vec![Effect::Close(entry.item), Effect::Notice(id, why)],
            None => Vec::new(),
        }
    }

    /// Capture plays: every consumer waiting for it starts. None when it already played.
    pub fn play(&mut self) -> Option<Vec<Effect<Id, T>>> {
        if self.playing {
            return None;
        }
        self.playing = true;
        let idle: Vec<Id> = self
            .consumers
            .iter()
            .filter(|(_, e)| e.phase == Phase::Idle)
            .map(|(id, _)| id.clone())
            .collect();
        Some(idle.into_iter().filter_map(|id| self.open(id)).collect())
    }

    /// Capture is gone: every consumer stops at once. They stay wanted and start again when
    /// capture plays, except those that were detached: they are reported finished.
    pub fn teardown(&mut self) -> Vec<Effect<Id, T>> {
        self.playing = false;
        let gone: Vec<Id> = self
            .consumers
            .iter()
            .filter(|(_, e)| e.phase == (Phase::Finishing { remove: true }))
            .map(|(id, _)| id.clone())
            .collect();
        let mut effects = Vec::new();
        for id in gone {
            effects.extend(self.remove(&id, ConsumerEvent::Finished));
        }
        for (id, entry) in &mut self.consumers {
            entry.phase = Phase::Idle;
            effects.push(Effect::Shutdown(id.clone()));
        }
        effects
    }

    /// Stops capture once its consumers have finished (a recorder finalising its segment), or
    /// at `now` + [`FINISH_TIMEOUT`] at the latest. On [`After::Exit`] every consumer goes;
    /// on [`After::Restart`] they stay wanted. A second stop while one is under way can only
    /// turn a restart into an exit.
    pub fn begin_stop(&mut self, after: After, now: Instant) -> Vec<Effect<Id, T>> {
        if let Some(s) = &mut self.stop {
            if after == After::Exit {
                s.after = After::Exit;
            }
            return Vec::new();
        }
        self.stop = Some(Stop {
            after,
            deadline: now + FINISH_TIMEOUT,
        });
        let remove = after == After::Exit;
        let ids: Vec<Id> = self.consumers.keys().cloned().collect();
        let mut effects = Vec::new();
        for id in ids {
            let Some(entry) = self.consumers.get_mut(&id) else {
                continue;
            };
            match entry.phase {
                Phase::Running => {
                    entry.phase = Phase::Finishing { remove };
                    effects.push(Effect::Finish {
                        id,
                        generation: entry.generation,
                    });
                }
                Phase::Finishing { remove: was } => {
                    entry.phase = Phase::Finishing {
                        remove: remove || was,
                    }
                }
                Phase::Idle if remove => effects.extend(self.remove(&id, ConsumerEvent::Finished)),
                Phase::Idle => {}
            }
        }
        effects
    }

    /// Completes a stop under way once no consumer is finishing any more, or at its deadline.
    pub fn poll_stop(&mut self, now: Instant) -> Option<Stopped<Id, T>> {
        let stop = self.stop.as_ref()?;
        let finishing = self
            .consumers
            .values()
            .any(|e| matches!(e.phase, Phase::Finishing { .. }));
        if finishing && now < stop.deadline {
            return None;
        }
        let after = stop.after;
        self.stop = None;
        Some(Stopped {
            after,
            gave_up: finishing,
            effects: self.teardown(),
        })
    }

    /// Capture failed (and was torn down). True when it is to be rebuilt: a stop for a restart
    /// is over, as the fault did its work; a stop for exit goes on.
    pub fn fault(&mut self) -> bool {
        if self.stop.as_ref().is_some_and(|s| s.after == After::Exit) {
            return false;
        }
        self.stop = None;
        true
    }

    /// A capture is being built: whatever stop came before it is over.
    pub fn starting(&mut self) {
        self.stop = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Effects = Vec<Effect<&'static str, &'static str>>;

    fn state() -> State<&'static str, &'static str> {
        State::default()
    }

    /// Attaches `id` as consumer `item`, "same" meaning the same item.
    fn attach(
        s: &mut State<&'static str, &'static str>,
        id: &'static str,
        item: &'static str,
    ) -> Effects {
        s.attach(id, |old| *old == item, || item)
    }

    fn open(id: &'static str, generation: u64) -> Effect<&'static str, &'static str> {
        Effect::Open { id, generation }
    }

    fn finish(id: &'static str, generation: u64) -> Effect<&'static str, &'static str> {
        Effect::Finish { id, generation }
    }

    fn finished(id: &'static str) -> Effect<&'static str, &'static str> {
        Effect::Notice(id, ConsumerEvent::Finished)
    }

    /// Sorted, as consumers are kept in a map and come out in any order.
    fn sorted(mut effects: Effects) -> Effects {
        effects.sort_by_key(|e| format!("{e:?}"));
        effects
    }

    /// A state with capture playing and `rec` running under generation 1.
    fn playing_with_rec() -> State<&'static str, &'static str> {
        let mut s = state();
        assert_eq!(s.play(), Some(vec![]));
        assert_eq!(attach(&mut s, "rec", "recorder"), vec![open("rec", 1)]);
        s
    }

    #[test]
    fn a_consumer_attached_before_capture_plays_starts_when_it_does_and_only_once() {
        let mut s = state();
        assert_eq!(attach(&mut s, "rec", "recorder"), vec![]);
        assert_eq!(s.play(), Some(vec![open("rec", 1)]));
        assert_eq!(s.play(), None, "playing twice starts nothing twice");
        assert_eq!(s.running_mut().count(), 1);
    }

    #[test]
    fn attaching_the_same_consumer_again_leaves_it_alone_and_another_replaces_it() {
        let mut s = playing_with_rec();
        assert_eq!(attach(&mut s, "rec", "recorder"), vec![]);
        assert_eq!(
            attach(&mut s, "rec", "recorder with other settings"),
            vec![Effect::Close("recorder"), open("rec", 2)]
        );
        assert_eq!(
            s.item_mut(&"rec"),
            Some(&mut "recorder with other settings")
        );
    }

    #[test]
    fn attaching_the_same_consumer_while_it_finishes_after_a_detach_starts_it_anew() {
        let mut s = playing_with_rec();
        assert_eq!(s.detach("rec"), vec![finish("rec", 1)]);
        assert_eq!(
            attach(&mut s, "rec", "recorder"),
            vec![Effect::Close("recorder"), open("rec", 2)]
        );
        // The old one's Finished is stale: the new one runs on, unreported.
        assert_eq!(s.event("rec", 1, ConsumerEvent::Finished), vec![]);
        assert_eq!(s.running_mut().count(), 1);
    }

    #[test]
    fn a_report_of_an_earlier_generation_is_ignored() {
        let mut s = playing_with_rec();
        attach(&mut s, "rec", "new recorder");
        let stale = ConsumerEvent::Failed(MediaError::DiskFull("old".into()));
        assert_eq!(s.event("rec", 1, stale), vec![]);
        assert_eq!(s.event("rec", 1, ConsumerEvent::Started), vec![]);
        assert_eq!(
            s.event("rec", 2, ConsumerEvent::Started),
            vec![Effect::Notice("rec", ConsumerEvent::Started)]
        );
        assert_eq!(s.event("gone", 2, ConsumerEvent::Started), vec![]);
    }

    #[test]
    fn a_failed_consumer_is_reported_and_dropped() {
        let mut s = playing_with_rec();
        let e = MediaError::DiskFull("/rec".into());
        assert_eq!(
            s.event("rec", 1, ConsumerEvent::Failed(e.clone())),
            vec![
                Effect::Close("recorder"),
                Effect::Notice("rec", ConsumerEvent::Failed(e))
            ]
        );
        assert!(s.item_mut(&"rec").is_none());
    }

    #[test]
    fn a_consumer_that_cannot_start_is_reported_and_dropped_and_the_others_run_on() {
        let mut s = state();
        // Items named as their ids, to tell which one a Close carries.
        attach(&mut s, "rec", "rec");
        attach(&mut s, "tap", "tap");
        let opened = sorted(s.play().unwrap_or_default());
        assert_eq!(opened.len(), 2);
        let Some(Effect::Open { id, generation }) = opened.first() else {
            panic!("{opened:?}");
        };
        let e = MediaError::NoSource("video or audio");
        assert_eq!(
            s.open_failed(id, *generation, e.clone()),
            vec![
                Effect::Close(*id),
                Effect::Notice(*id, ConsumerEvent::Failed(e.clone()))
            ]
        );
        assert_eq!(s.open_failed(id, *generation, e), vec![], "reported once");
        assert_eq!(s.running_mut().count(), 1);
    }

    #[test]
    fn detaching_a_running_consumer_waits_for_its_finish() {
        let mut s = playing_with_rec();
        assert_eq!(s.detach("rec"), vec![finish("rec", 1)]);
        assert_eq!(
            s.running_mut().count(),
            0,
            "no housekeeping while finishing"
        );
        assert_eq!(s.detach("rec"), vec![], "asked once");
        assert_eq!(
            s.event("rec", 1, ConsumerEvent::Finished),
            vec![Effect::Close("recorder"), finished("rec")]
        );
        assert!(s.item_mut(&"rec").is_none());
    }

    #[test]
    fn detaching_an_idle_consumer_or_an_unknown_id_reports_finished_at_once() {
        let mut s = state();
        attach(&mut s, "rec", "recorder");
        assert_eq!(
            s.detach("rec"),
            vec![Effect::Close("recorder"), finished("rec")]
        );
        assert_eq!(s.detach("rec"), vec![finished("rec")]);
        assert_eq!(s.play(), Some(vec![]), "nothing left to start");
    }

    #[test]
    fn a_restart_reopens_every_attached_consumer_under_new_generations() {
        let mut s = playing_with_rec();
        attach(&mut s, "tap", "tap");
        assert_eq!(
            sorted(s.teardown()),
            vec![Effect::Shutdown("rec"), Effect::Shutdown("tap")]
        );
        assert!(!s.playing());
        let reopened = sorted(s.play().unwrap_or_default());
        assert_eq!(reopened.len(), 2);
        assert!(reopened.iter().all(|e| matches!(e,
            Effect::Open { generation, .. } if *generation > 2)));
        assert_eq!(s.event("rec", 1, ConsumerEvent::Started), vec![], "stale");
    }

    #[test]
    fn no_consumer_starts_while_a_stop_is_under_way() {
        let mut s = state();
        s.play();
        let t0 = Instant::now();
        assert_eq!(s.begin_stop(After::Restart, t0), vec![]);
        assert_eq!(attach(&mut s, "rec", "recorder"), vec![]);
        let done = s.poll_stop(t0);
        assert_eq!(done.map(|d| d.after), Some(After::Restart));
        assert_eq!(s.play(), Some(vec![open("rec", 1)]));
    }

    #[test]
    fn a_stop_for_a_restart_waits_for_finishing_consumers_and_keeps_them() {
        let mut s = playing_with_rec();
        let t0 = Instant::now();
        assert_eq!(s.begin_stop(After::Restart, t0), vec![finish("rec", 1)]);
        assert!(s.stopping());
        assert_eq!(s.stop_deadline(), Some(t0 + FINISH_TIMEOUT));
        assert!(s.poll_stop(t0 + Duration::from_secs(1)).is_none());
        // Finished for a restart: idle, kept, and not reported to the agent.
        assert_eq!(
            s.event("rec", 1, ConsumerEvent::Finished),
            vec![Effect::Shutdown("rec")]
        );
        let done = s.poll_stop(t0 + Duration::from_secs(1));
        assert_eq!(
            done,
            Some(Stopped {
                after: After::Restart,
                gave_up: false,
                effects: vec![Effect::Shutdown("rec")],
            })
        );
        assert!(!s.stopping());
        assert_eq!(s.play(), Some(vec![open("rec", 2)]));
    }

    #[test]
    fn a_stop_gives_up_on_a_consumer_that_does_not_finish_within_the_timeout() {
        let mut s = playing_with_rec();
        let t0 = Instant::now();
        s.begin_stop(After::Restart, t0);
        let just_before = t0 + FINISH_TIMEOUT - Duration::from_millis(1);
        assert!(s.poll_stop(just_before).is_none());
        let done = s.poll_stop(t0 + FINISH_TIMEOUT);
        assert_eq!(
            done,
            Some(Stopped {
                after: After::Restart,
                gave_up: true,
                effects: vec![Effect::Shutdown("rec")],
            })
        );
        // It was finishing for a restart: still wanted.
        assert_eq!(s.play(), Some(vec![open("rec", 2)]));
    }

    #[test]
    fn a_stop_for_exit_drops_an_idle_consumer_at_once() {
        let mut s = state();
        attach(&mut s, "rec", "recorder");
        let t0 = Instant::now();
        assert_eq!(
            s.begin_stop(After::Exit, t0),
            vec![Effect::Close("recorder"), finished("rec")]
        );
        let done = s.poll_stop(t0);
        assert!(done.is_some_and(|d| d.after == After::Exit && !d.gave_up && d.effects.is_empty()));
    }

    #[test]
    fn a_stop_for_exit_finishes_running_consumers_and_reports_each_finished() {
        let mut s = playing_with_rec();
        assert_eq!(attach(&mut s, "tap", "tap"), vec![open("tap", 2)]);
        let t0 = Instant::now();
        assert_eq!(
            sorted(s.begin_stop(After::Exit, t0)),
            vec![finish("rec", 1), finish("tap", 2)]
        );
        assert_eq!(
            s.event("rec", 1, ConsumerEvent::Finished),
            vec![Effect::Close("recorder"), finished("rec")]
        );
        assert!(s.poll_stop(t0 + Duration::from_secs(4)).is_none());
        // The tap never answers: given up on at the deadline, and reported finished.
        let done = s.poll_stop(t0 + FINISH_TIMEOUT);
        assert_eq!(
            done,
            Some(Stopped {
                after: After::Exit,
                gave_up: true,
                effects: vec![Effect::Close("tap"), finished("tap")],
            })
        );
        assert!(s.item_mut(&"tap").is_none());
    }

    #[test]
    fn a_second_stop_can_turn_a_restart_into_an_exit_but_not_back() {
        let mut s = playing_with_rec();
        let t0 = Instant::now();
        s.begin_stop(After::Restart, t0);
        assert_eq!(
            s.begin_stop(After::Exit, t0 + Duration::from_secs(1)),
            vec![]
        );
        assert_eq!(s.begin_stop(After::Restart, t0), vec![]);
        assert_eq!(
            s.stop_deadline(),
            Some(t0 + FINISH_TIMEOUT),
            "the first deadline holds"
        );
        // The recorder was asked to finish for a restart and is kept as such (unreported):
        // the exit ends the engine with the STOPPED it reports.
        assert_eq!(
            s.event("rec", 1, ConsumerEvent::Finished),
            vec![Effect::Shutdown("rec")]
        );
        assert_eq!(s.poll_stop(t0).map(|d| d.after), Some(After::Exit));
    }

    #[test]
    fn a_consumer_detached_while_finishing_for_a_restart_is_dropped_when_done() {
        let mut s = playing_with_rec();
        let t0 = Instant::now();
        s.begin_stop(After::Restart, t0);
        assert_eq!(s.detach("rec"), vec![]);
        assert_eq!(
            s.event("rec", 1, ConsumerEvent::Finished),
            vec![Effect::Close("recorder"), finished("rec")]
        );
        assert!(s.poll_stop(t0).is_some());
        assert_eq!(s.play(), Some(vec![]));
    }

    #[test]
    fn a_fault_ends_a_stop_for_a_restart_but_not_one_for_exit() {
        let mut s = playing_with_rec();
        let t0 = Instant::now();
        s.begin_stop(After::Restart, t0);
        s.teardown();
        assert!(s.fault(), "rebuild after the fault");
        assert!(!s.stopping());

        let mut s = playing_with_rec();
        s.begin_stop(After::Exit, t0);
        s.teardown();
        assert!(!s.fault());
        assert_eq!(s.poll_stop(t0).map(|d| d.after), Some(After::Exit));
        assert!(s.fault(), "no stop: a plain fault rebuilds");
    }

    #[test]
    fn a_teardown_reports_detached_consumers_finished_and_idles_the_rest() {
        let mut s = playing_with_rec();
        attach(&mut s, "tap", "tap");
        s.detach("tap");
        assert_eq!(
            s.teardown(),
            vec![
                Effect::Close("tap"),
                finished("tap"),
                Effect::Shutdown("rec")
            ]
        );
        assert_eq!(s.running_mut().count(), 0);
    }
}
