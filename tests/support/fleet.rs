//! The fleet operator's side in tests.

use roombox::fleet::cli::{Operator, To};
use std::time::Duration;

/// Waits until `device` answers a ping through `op` (it is connected and subscribed), for at
/// most `timeout`.
pub async fn wait_online(op: &mut Operator, device: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = op
            .request(
                &To::Device(device.into()),
                "ping",
                b"",
                None,
                Duration::from_millis(700),
            )
            .await;
        if r.is_ok_and(|r| r.first().is_some_and(|(_, l)| l.ok)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{device} never answered a ping"
        );
    }
}
