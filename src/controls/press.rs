//! Debouncing and press classification: a pure state machine fed timestamped edges.
//!
//! Nothing here reads a clock. Edges come in with their time (nanoseconds on the monotonic clock,
//! as the kernel stamps them), the owner asks [`Classifier::next_deadline`] when to call
//! [`Classifier::poll`] next, and gestures come out.
//!
//! Debounce is a lockout: an edge that changes the level is taken at once and every edge in
//! the following `debounce` is ignored; when the lockout ends, the level is read again and a
//! difference is taken as a new edge. A press counts only if the button is still down when its
//! lockout ends, so a spike shorter than `debounce` is no press at all; a release acts at once,
//! which keeps the button-to-LED time short.

use super::Button;

/// What kind of press a gesture was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PressKind {
    /// Pressed and released.
    Short,
    /// Held for the long-press time.
    Long,
    /// Two presses within the double-press window.
    Double,
}

/// One recognised gesture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gesture {
    pub button: Button,
    /// What kind of press.
    pub kind: PressKind,
    /// When it was recognised, ns on the edge clock.
    pub at_ns: u64,
}

/// Timing of one button, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Edges within this time of an accepted edge are ignored.
    pub debounce_ns: u64,
    /// Hold time of a long press; `None` when no long action is set (long presses are short).
    pub long_ns: Option<u64>,
    /// Window for the second press; `None` when no double action is set (act at once).
    pub double_ns: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Released, nothing pending.
    Idle,
    /// Went down at `at`; a press once still down at the end of the lockout. `after` is the
    /// release time of a first press when this would be the second of a double press.
    Pressing { at: u64, after: Option<u64> },
    /// A confirmed press that went down at `at`.
    Held { at: u64 },
    /// The long or double action fired; waiting for the release.
    Done,
    /// Released after a short press at `at`; waiting for a second press.
    WaitSecond { at: u64 },
}

/// The state machine of one button.
#[derive(Debug, Clone)]
struct Machine {
    timing: Timing,
    phase: Phase,
    /// The level as last reported (pressed).
    raw: bool,
    /// The level as accepted.
    down: bool,
    /// Edges before this are ignored.
    lockout_until: Option<u64>,
    /// The latest time seen; timestamps never go back.
    last: u64,
}

impl Machine {
    fn new(timing: Timing) -> Machine {
        Machine {
            timing,
            phase: Phase::Idle,
            raw: false,
            down: false,
            lockout_until: None,
            last: 0,
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        let phase = match self.phase {
            Phase::Held { at } => self.timing.long_ns.map(|l| at.saturating_add(l)),
            Phase::WaitSecond { at } => self.timing.double_ns.map(|d| at.saturating_add(d)),
            _ => None,
        };
        match (self.lockout_until, phase) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn advance(&mut self, now: u64, out: &mut Vec<PressKind>) {
        while let Some(d) = self.next_deadline() {
            if d > now {
                break;
            }
            self.fire(d, out);
        }
    }

    fn fire(&mut self, d: u64, out: &mut Vec<PressKind>) {
        if self.lockout_until == Some(d) {
            self.lockout_until = None;
            if self.raw != self.down {
                self.accept(self.raw, d, out);
            } else if let Phase::Pressing { at, after } = self.phase {
                // Still down when the lockout ends: a real press.
                if after.is_some() {
                    out.push(PressKind::Double);
                    self.phase = Phase::Done;
                } else {
                    self.phase = Phase::Held { at };
                }
            }
            return;
        }
        match self.phase {
            Phase::Held { .. } => {
                out.push(PressKind::Long);
                self.phase = Phase::Done;
            }
            Phase::WaitSecond { .. } => {
                out.push(PressKind::Short);
                self.phase = Phase::Idle;
            }
            _ => {}
        }
    }

    /// Takes a level change at `t` and starts its lockout.
    fn accept(&mut self, pressed: bool, t: u64, out: &mut Vec<PressKind>) {
        self.down = pressed;
        self.lockout_until = Some(t.saturating_add(self.timing.debounce_ns));
        self.phase = match (pressed, self.phase) {
            (true, Phase::WaitSecond { at }) => Phase::Pressing {
                at: t,
                after: Some(at),
            },
            (true, _) => Phase::Pressing { at: t, after: None },
            // Up before the press was confirmed: a spike, not a press.
            (
                false,
                Phase::Pressing {
                    after: Some(at), ..
                },
            ) => Phase::WaitSecond { at },
            (false, Phase::Pressing { after: None, .. }) => Phase::Idle,
            (false, Phase::Held { .. }) => {
                if self.timing.double_ns.is_some() {
                    Phase::WaitSecond { at: t }
                } else {
                    out.push(PressKind::Short);
                    Phase::Idle
                }
            }
            (false, _) => Phase::Idle,
        };
    }

    fn edge(&mut self, t: u64, pressed: bool, out: &mut Vec<PressKind>) {
        let t = t.max(self.last);
        self.last = t;
        self.advance(t, out);
        self.raw = pressed;
        if self.lockout_until.is_some() || pressed == self.down {
            return;
        }
        self.accept(pressed, t, out);
    }

    fn poll(&mut self, now: u64, out: &mut Vec<PressKind>) {
        let now = now.max(self.last);
        self.last = now;
        self.advance(now, out);
    }

    fn reset(&mut self) {
        let timing = self.timing;
        *self = Machine::new(timing);
    }
}

/// Debounces and classifies the presses of every button.
#[derive(Debug, Clone)]
pub struct Classifier {
    machines: Vec<(Button, Machine)>,
}

impl Classifier {
    /// A classifier with each button's timing.
    pub fn new(timings: &[(Button, Timing)]) -> Classifier {
        Classifier {
            machines: timings
                .iter()
                .map(|(b, t)| (*b, Machine::new(*t)))
                .collect(),
        }
    }

    /// Takes one edge: `pressed` is the logical level (active-low already applied) at `t_ns`.
    /// Edges of unknown buttons are ignored.
    pub fn edge(&mut self, button: Button, pressed: bool, t_ns: u64) -> Vec<Gesture> {
        let mut gestures = Vec::new();
        for (b, m) in &mut self.machines {
            let mut kinds = Vec::new();
            if *b == button {
                m.edge(t_ns, pressed, &mut kinds);
            } else {
                m.poll(t_ns, &mut kinds);
            }
            gestures.extend(kinds.into_iter().map(|kind| Gesture {
                button: *b,
                kind,
                at_ns: t_ns,
            }));
        }
        gestures
    }

    /// Fires every deadline up to `now_ns`.
    pub fn poll(&mut self, now_ns: u64) -> Vec<Gesture> {
        let mut gestures = Vec::new();
        for (b, m) in &mut self.machines {
            let mut kinds = Vec::new();
            m.poll(now_ns, &mut kinds);
            gestures.extend(kinds.into_iter().map(|kind| Gesture {
                button: *b,
                kind,
                at_ns: now_ns,
            }));
        }
        gestures
    }

    /// When [`Classifier::poll`] should next be called, if anything is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        self.machines
            .iter()
            .filter_map(|(_, m)| m.next_deadline())
            .min()
    }

    /// Changes the debounce of every button (0 when the backend debounces already) and forgets
    /// every press in progress.
    pub fn set_debounce(&mut self, debounce_ns: u64) {
        for (_, m) in &mut self.machines {
            m.timing.debounce_ns = debounce_ns;
            m.reset();
        }
    }

    /// Forgets every press in progress (the lines were lost); nothing fires.
    pub fn reset(&mut self) {
        for (_, m) in &mut self.machines {
            m.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn timing(long: bool, double: bool) -> Timing {
        Timing {
            debounce_ns: 20 * MS,
            long_ns: long.then_some(1500 * MS),
            double_ns: double.then_some(400 * MS),
        }
    }

    /// Feeds `(ms, pressed)` edges of the join button, then polls far in the future.
    fn run(t: Timing, edges: &[(u64, bool)]) -> Vec<PressKind> {
        let mut c = Classifier::new(&[(Button::Join, t)]);
        let mut out = Vec::new();
        for (ms, p) in edges {
            out.extend(c.edge(Button::Join, *p, ms * MS));
        }
        let end = edges.last().map(|e| e.0).unwrap_or(0) + 100_000;
        out.extend(c.poll(end * MS));
        assert_eq!(c.next_deadline(), None, "nothing may stay pending");
        out.into_iter().map(|g| g.kind).collect()
    }

    /// A press with bouncing contacts on both edges, starting at `t0` ms and held `hold` ms.
    fn bouncy_press(t0: u64, hold: u64) -> Vec<(u64, bool)> {
        let mut e = vec![
            (t0, true),
            (t0 + 1, false),
            (t0 + 2, true),
            (t0 + 4, false),
            (t0 + 5, true),
        ];
        let r = t0 + hold;
        e.extend([
            (r, false),
            (r + 1, true),
            (r + 3, false),
            (r + 4, true),
            (r + 6, false),
        ]);
        e
    }

    #[test]
    fn a_clean_short_press_fires_once_on_release() {
        let mut c = Classifier::new(&[(Button::Join, timing(true, false))]);
        assert!(c.edge(Button::Join, true, 0).is_empty());
        let g = c.edge(Button::Join, false, 100 * MS);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].kind, PressKind::Short);
        assert_eq!(g[0].at_ns, 100 * MS, "acts on the release itself");
    }

    #[test]
    fn bouncing_contacts_give_one_press() {
        assert_eq!(
            run(timing(true, false), &bouncy_press(0, 120)),
            vec![PressKind::Short]
        );
    }

    #[test]
    fn a_spike_shorter_than_debounce_is_no_press() {
        assert!(run(timing(true, true), &[(0, true), (3, false)]).is_empty());
        assert!(run(
            timing(true, false),
            &[(0, true), (3, false), (5, true), (8, false)]
        )
        .is_empty());
    }

    #[test]
    fn bounce_longer_than_debounce_still_gives_one_press() {
        // Chatter for 30 ms (longer than the 20 ms lockout) before settling down.
        let edges = [
            (0, true),
            (9, false),
            (18, true),
            (19, false),
            (22, true),
            (29, false),
            (30, true),
            (200, false),
        ];
        assert_eq!(run(timing(true, false), &edges), vec![PressKind::Short]);
    }

    #[test]
    fn holding_fires_long_while_held_and_nothing_on_release() {
        let mut c = Classifier::new(&[(Button::Join, timing(true, false))]);
        c.edge(Button::Join, true, 0);
        assert!(c.poll(1499 * MS).is_empty());
        assert_eq!(c.next_deadline(), Some(1500 * MS));
        let g = c.poll(1500 * MS);
        assert_eq!(
            g.iter().map(|g| g.kind).collect::<Vec<_>>(),
            vec![PressKind::Long]
        );
        assert!(c.edge(Button::Join, false, 3000 * MS).is_empty());
    }

    #[test]
    fn without_a_long_action_a_long_hold_is_a_short_press() {
        assert_eq!(
            run(timing(false, false), &[(0, true), (5000, false)]),
            vec![PressKind::Short]
        );
    }

    #[test]
    fn two_quick_presses_are_a_double_press() {
        let mut edges = bouncy_press(0, 80);
        edges.extend(bouncy_press(250, 80));
        assert_eq!(run(timing(true, true), &edges), vec![PressKind::Double]);
    }

    #[test]
    fn the_double_press_fires_on_the_second_press_not_its_release() {
        let mut c = Classifier::new(&[(Button::Join, timing(true, true))]);
        c.edge(Button::Join, true, 0);
        c.edge(Button::Join, false, 80 * MS);
        c.edge(Button::Join, true, 200 * MS);
        let g = c.poll(220 * MS);
        assert_eq!(
            g.iter().map(|g| g.kind).collect::<Vec<_>>(),
            vec![PressKind::Double]
        );
        // Held on after the double: no long press follows.
        assert!(c.poll(5000 * MS).is_empty());
        assert!(c.edge(Button::Join, false, 5100 * MS).is_empty());
    }

    #[test]
    fn presses_further_apart_than_the_window_are_two_short_presses() {
        let mut edges = bouncy_press(0, 80);
        edges.extend(bouncy_press(1000, 80));
        assert_eq!(
            run(timing(true, true), &edges),
            vec![PressKind::Short, PressKind::Short]
        );
    }

    #[test]
    fn with_a_double_action_the_short_press_waits_for_the_window() {
        let mut c = Classifier::new(&[(Button::Join, timing(false, true))]);
        c.edge(Button::Join, true, 0);
        assert!(c.edge(Button::Join, false, 80 * MS).is_empty());
        assert!(c.poll(479 * MS).is_empty(), "the window is still open");
        assert_eq!(c.next_deadline(), Some(480 * MS));
        assert_eq!(c.poll(480 * MS)[0].kind, PressKind::Short);
    }

    #[test]
    fn a_spike_in_the_double_window_does_not_eat_the_short_press() {
        let edges = [(0, true), (80, false), (200, true), (202, false)];
        assert_eq!(run(timing(false, true), &edges), vec![PressKind::Short]);
    }

    #[test]
    fn fifty_bouncing_presses_give_exactly_fifty_actions() {
        let mut edges = Vec::new();
        for i in 0..50 {
            edges.extend(bouncy_press(i * 300, 100));
        }
        let out = run(timing(true, false), &edges);
        assert_eq!(out.len(), 50);
        assert!(out.iter().all(|k| *k == PressKind::Short));
    }

    #[test]
    fn fifty_bouncing_presses_with_a_double_action_give_fifty_short_presses() {
        let mut edges = Vec::new();
        for i in 0..50 {
            edges.extend(bouncy_press(i * 700, 100));
        }
        assert_eq!(run(timing(true, true), &edges), vec![PressKind::Short; 50]);
    }

    #[test]
    fn zero_debounce_acts_on_every_clean_edge() {
        let t = Timing {
            debounce_ns: 0,
            long_ns: None,
            double_ns: None,
        };
        assert_eq!(
            run(t, &[(0, true), (1, false), (2, true), (3, false)]),
            vec![PressKind::Short, PressKind::Short]
        );
    }

    #[test]
    fn timestamps_going_back_are_clamped_not_trusted() {
        let mut c = Classifier::new(&[(Button::Join, timing(false, false))]);
        c.edge(Button::Join, true, 1000 * MS);
        // A stale timestamp must not make the release look earlier than the press.
        let g = c.edge(Button::Join, false, 10 * MS);
        assert!(
            g.is_empty(),
            "a release inside the lockout is ignored: {g:?}"
        );
        assert_eq!(c.poll(2000 * MS).len(), 0);
    }

    #[test]
    fn buttons_are_independent() {
        let t = timing(false, false);
        let mut c = Classifier::new(&[(Button::Join, t), (Button::Mute, t)]);
        c.edge(Button::Join, true, 0);
        c.edge(Button::Mute, true, 10 * MS);
        let g1 = c.edge(Button::Mute, false, 100 * MS);
        let g2 = c.edge(Button::Join, false, 110 * MS);
        assert_eq!(g1[0].button, Button::Mute);
        assert_eq!(g2[0].button, Button::Join);
    }

    #[test]
    fn with_debounce_done_upstream_a_short_clean_press_counts() {
        // Kernel-debounced edges carry the time the debounce ended: a press can look shorter
        // than the debounce period and must still count.
        let mut c = Classifier::new(&[(Button::Join, timing(false, false))]);
        c.set_debounce(0);
        c.edge(Button::Join, true, 100 * MS);
        let g = c.edge(Button::Join, false, 105 * MS);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn reset_forgets_a_press_in_progress() {
        let mut c = Classifier::new(&[(Button::Join, timing(true, false))]);
        c.edge(Button::Join, true, 0);
        c.reset();
        assert!(c.poll(10_000 * MS).is_empty());
        assert!(c.edge(Button::Join, false, 10_001 * MS).is_empty());
    }
}
