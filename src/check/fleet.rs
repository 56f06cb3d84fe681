//! The `[fleet]` checker: the certificate and password files, then one real connection to the
//! broker.

use super::{CheckLine, Status};
use crate::config::Config;

/// The fleet link: the certificate files (readable, parsed, X.509 v3, in date, signed by the
/// configured CA, a key that matches), the password file, then a real connection to the broker
/// under a client id of its own (so a running box keeps its session).
pub fn fleet(c: &Config) -> Vec<CheckLine> {
    use crate::fleet::{certs, link};
    if !c.fleet.enabled() {
        return vec![CheckLine::new(
            Status::Ok,
            "fleet",
            "off (fleet.broker is not set)",
        )];
    }
    let endpoint = match link::Endpoint::of_fleet(&c.fleet) {
        Ok(e) => e,
        Err(e) => return vec![CheckLine::new(Status::Failed, "fleet", format!("{e:#}"))],
    };
    let mut out = Vec::new();
    if let Some(ca) = endpoint.ca.as_ref().filter(|_| endpoint.url.tls) {
        let client = endpoint
            .client_auth
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        for f in certs::inspect(ca, client) {
            let status = match f.level {
                certs::Level::Ok => Status::Ok,
                certs::Level::Warning => Status::Warning,
                certs::Level::Failed => Status::Failed,
            };
            let detail = match &f.fix {
                Some(fix) => format!("{}; fix: {fix}", f.detail),
                None => f.detail,
            };
            out.push(CheckLine::new(status, f.check, detail));
        }
    }
    if let Some(p) = &endpoint.password_file {
        if let Err(e) = std::fs::read_to_string(p) {
            out.push(CheckLine::new(
                Status::Failed,
                "fleet-auth",
                format!("cannot read the password file {}: {e}", p.display()),
            ));
        }
    }
    let client_id = format!("roombox-check-{}-{}", c.device_id(), std::process::id());
    let probe = link::probe(&endpoint, client_id.clone());
    let outcome = match tokio::runtime::Handle::try_current() {
        // `roombox check` runs this on a blocking thread of its runtime.
        Ok(h) => h.block_on(probe),
        Err(_) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(probe),
            Err(e) => {
                out.push(CheckLine::new(
                    Status::Failed,
                    "fleet",
                    format!("cannot start a runtime to reach the broker: {e}"),
                ));
                return out;
            }
        },
    };
    out.push(match outcome {
        Ok(how) => CheckLine::new(Status::Ok, "fleet", how),
        Err(f) if f.what.contains("not authorized") || f.what.contains("client id") => {
            CheckLine::new(
                Status::Failed,
                "fleet",
                format!(
                    "{f} (the check connects as `{client_id}`; a broker that allows only the \
                     box's own client id, `roombox-{}`, refuses it even when the box gets in)",
                    c.device_id()
                ),
            )
        }
        Err(f) => CheckLine::new(Status::Failed, "fleet", f.to_string()),
    });
    out
}
