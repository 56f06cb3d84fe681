//! Software updates, the I/O half: checking a manifest ([`manifest`]), fetching and verifying
//! the package ([`download`]), the hand-over to the root installer ([`install`]), and that
//! installer ([`apply`]) with its two methods, dpkg ([`deb`]) and RAUC A/B slots ([`rauc`]).
//!
//! The rules (when to download, when the room is idle enough to install, what each step
//! reports) are the agent's pure state machine (`agent/state/update.rs`); this module only does
//! what it asks.
//!
//! Layer 4 of docs/architecture.md: it imports `config`, `command`, `event` and `model`; the
//! agent (and `main` for `roombox update-apply`) import it.

pub mod apply;
pub mod deb;
pub mod download;
pub mod install;
pub mod manifest;
pub mod marker;
pub mod rauc;
pub mod repack;

/// The directory under the state directory where downloads and the installer's files live.
pub const DIR: &str = "update";
