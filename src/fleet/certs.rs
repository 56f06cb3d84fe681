//! The fleet's certificates, inspected before rustls sees them: readable, parsed, X.509 version
//! 3, in date, signed by the configured CA, and with a key that matches.
//!
//! rustls refuses some certificates that OpenSSL (and so mosquitto) accepts — a version 1
//! certificate above all, which a plain `openssl x509 -req` makes — and says only `Other(...)`
//! when it does. Looking at the files ourselves turns that into a sentence and a fix, both for
//! `roombox check` and for the error the running box reports.

use std::path::Path;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::x509::X509Version;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but deserves attention.
    Warning,
    /// Will not work.
    Failed,
}

/// One thing found about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// Which file: `fleet-ca`, `fleet-cert` or `fleet-key` (the `roombox check` names).
    pub check: &'static str,
    /// What was found, naming the file.
    pub detail: String,
    /// What to do about it, when something is wrong.
    pub fix: Option<String>,
}

impl Finding {
    fn new(level: Level, check: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            level,
            check,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// Whose certificate a fix is for: the extensions it needs differ.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    /// The box's client certificate.
    Box,
    /// The broker's server certificate, for this host name or address.
    Broker(&'a str),
}

/// The fix for a version 1 certificate, for a person to paste.
pub fn v3_fix(holder: Holder) -> String {
    let (what, name, ext) = match holder {
        Holder::Box => (
            "the box's certificate".to_string(),
            "box",
            "basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\nextendedKeyUsage=clientAuth\\n"
                .to_string(),
        ),
        Holder::Broker(host) => {
            let san = if host.parse::<std::net::IpAddr>().is_ok() {
                format!("IP:{host}")
            } else {
                format!("DNS:{host}")
            };
            (
                "the broker's certificate".to_string(),
                "broker",
                format!("subjectAltName={san}\\nextendedKeyUsage=serverAuth\\n"),
            )
        }
    };
    format!(
        "re-issue {what} as X.509 v3: rustls accepts nothing older, although OpenSSL and \
         mosquitto do. `openssl x509 -req` makes version 1 unless it adds extensions, so give it \
         some: `openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
         -out {name}.pem -extfile <(printf '{ext}')`, or make the request with `-addext` and sign \
         it with `-copy_extensions copyall`"
    )
}

/// Every PEM block in `bytes`, or why there is none.
fn pem_blocks(bytes: &[u8]) -> Result<Vec<Pem>, String> {
    let mut out = Vec::new();
    for p in Pem::iter_from_buffer(bytes) {
        match p {
            Ok(p) => out.push(p),
            Err(e) if out.is_empty() => return Err(format!("not PEM: {e}")),
            // Trailing text after the last block is common and harmless.
            Err(_) => break,
        }
    }
    if out.is_empty() {
        return Err("no PEM block in it".into());
    }
    Ok(out)
}

fn read(check: &'static str, path: &Path) -> Result<Vec<u8>, Box<Finding>> {
    std::fs::read(path).map_err(|e| {
        Box::new(Finding::new(
            Level::Failed,
            check,
            format!("cannot read {}: {e}", path.display()),
        ))
    })
}

fn certs_in(check: &'static str, path: &Path) -> Result<Vec<Pem>, Box<Finding>> {
    let bytes = read(check, path)?;
    let blocks = pem_blocks(&bytes).map_err(|e| {
        Box::new(Finding::new(
            Level::Failed,
            check,
            format!("{}: {e}", path.display()),
        ))
    })?;
    let certs: Vec<Pem> = blocks
        .into_iter()
        .filter(|p| p.label == "CERTIFICATE")
        .collect();
    if certs.is_empty() {
        return Err(Box::new(Finding::new(
            Level::Failed,
            check,
            format!("{} holds no CERTIFICATE block", path.display()),
        )));
    }
    Ok(certs)
}

fn validity(check: &'static str, path: &Path, c: &X509Certificate) -> Option<Finding> {
    let v = c.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < v.not_before {
        Some(Finding::new(
            Level::Failed,
            check,
            format!(
                "{} is not valid before {} (is the clock right?)",
                path.display(),
                v.not_before
            ),
        ))
    } else if now > v.not_after {
        Some(
            Finding::new(
                Level::Failed,
                check,
                format!("{} expired on {}", path.display(), v.not_after),
            )
            .fix("issue a new certificate"),
        )
    } else {
        None
    }
}

/// Inspects the CA file and, for mutual TLS, the client certificate and its key.
pub fn inspect(ca: &Path, client: Option<(&Path, &Path)>) -> Vec<Finding> {
    let mut out = Vec::new();
    let ca_blocks = match certs_in("fleet-ca", ca) {
        Ok(b) => b,
        Err(f) => {
            out.push(*f);
            Vec::new()
        }
    };
    let mut cas = Vec::new();
    for b in &ca_blocks {
        match b.parse_x509() {
            Ok(c) => cas.push(c),
            Err(e) => out.push(Finding::new(
                Level::Failed,
                "fleet-ca",
                format!("{}: a certificate does not parse: {e}", ca.display()),
            )),
        }
    }
    if let Some(first) = cas.first() {
        match validity("fleet-ca", ca, first) {
            Some(f) => out.push(f),
            None => out.push(Finding::new(
                Level::Ok,
                "fleet-ca",
                format!(
                    "{}: {}, valid until {}",
                    ca.display(),
                    first.subject(),
                    first.validity().not_after
                ),
            )),
        }
    }
    if let Some((cert, key)) = client {
        inspect_client(&cas, ca, cert, key, &mut out);
    }
    out
}

fn inspect_client(
    cas: &[X509Certificate],
    ca_path: &Path,
    cert: &Path,
    key: &Path,
    out: &mut Vec<Finding>,
) {
    const C: &str = "fleet-cert";
    let blocks = match certs_in(C, cert) {
        Ok(b) => b,
        Err(f) => {
            out.push(*f);
            inspect_key(None, cert, key, out);
            return;
        }
    };
    let c = match blocks[0].parse_x509() {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::new(
                Level::Failed,
                C,
                format!("{} does not parse: {e}", cert.display()),
            ));
            inspect_key(None, cert, key, out);
            return;
        }
    };
    let before = out.len();
    if c.version() != X509Version::V3 {
        out.push(
            Finding::new(
                Level::Failed,
                C,
                format!(
                    "{} is an X.509 version {} certificate; rustls refuses anything but version 3, \
                     so every TLS handshake fails",
                    cert.display(),
                    c.version().0 + 1
                ),
            )
            .fix(v3_fix(Holder::Box)),
        );
    }
    if let Some(f) = validity(C, cert, &c) {
        out.push(f);
    }
    if !cas.is_empty() {
        let signed = cas.iter().any(|ca| {
            ca.subject().as_raw() == c.issuer().as_raw()
                && c.verify_signature(Some(ca.public_key())).is_ok()
        });
        if !signed {
            // Not fatal by itself: the broker may trust the box's issuer beside the CA that
            // signed its own certificate. It refuses the box otherwise, and the handshake says.
            out.push(
                Finding::new(
                    Level::Warning,
                    C,
                    format!(
                        "{} (issuer {}) is not signed by the CA in {}; the broker refuses it \
                         unless it trusts that issuer too",
                        cert.display(),
                        c.issuer(),
                        ca_path.display()
                    ),
                )
                .fix("sign the box's certificate with the fleet's CA, or name that CA in fleet.tls.ca"),
            );
        }
    }
    if let Ok(Some(eku)) = c.extended_key_usage() {
        if !eku.value.any && !eku.value.client_auth {
            out.push(
                Finding::new(
                    Level::Warning,
                    C,
                    format!(
                        "{} does not allow client authentication (extendedKeyUsage); a broker that checks it refuses the box",
                        cert.display()
                    ),
                )
                .fix("re-issue it with extendedKeyUsage=clientAuth"),
            );
        }
    }
    if out[before..].iter().all(|f| f.level != Level::Failed) {
        out.push(Finding::new(
            Level::Ok,
            C,
            format!(
                "{}: {}, X.509 v3, valid until {}, signed by {}",
                cert.display(),
                c.subject(),
                c.validity().not_after,
                c.issuer()
            ),
        ));
    }
    inspect_key(Some(c.public_key().raw), cert, key, out);
}

fn inspect_key(spki: Option<&[u8]>, cert: &Path, key: &Path, out: &mut Vec<Finding>) {
    use rumqttc::tokio_rustls::rustls::pki_types::{
        PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    };
    const K: &str = "fleet-key";
    let bytes = match read(K, key) {
        Ok(b) => b,
        Err(f) => return out.push(*f),
    };
    let blocks = match pem_blocks(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return out.push(Finding::new(
                Level::Failed,
                K,
                format!("{}: {e}", key.display()),
            ))
        }
    };
    let der: Option<PrivateKeyDer<'static>> = blocks.into_iter().find_map(|p| {
        Some(match p.label.as_str() {
            "PRIVATE KEY" => PrivatePkcs8KeyDer::from(p.contents).into(),
            "EC PRIVATE KEY" => PrivateSec1KeyDer::from(p.contents).into(),
            "RSA PRIVATE KEY" => PrivatePkcs1KeyDer::from(p.contents).into(),
            _ => return None,
        })
    });
    let Some(der) = der else {
        return out.push(Finding::new(
            Level::Failed,
            K,
            format!(
                "{} holds no unencrypted private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)",
                key.display()
            ),
        ));
    };
    super::link::ensure_crypto_provider();
    let provider = rumqttc::tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
    let signing = match provider.key_provider.load_private_key(der) {
        Ok(k) => k,
        Err(e) => {
            return out.push(Finding::new(
                Level::Failed,
                K,
                format!("{}: not a usable private key: {e}", key.display()),
            ))
        }
    };
    let Some(spki) = spki else {
        return out.push(Finding::new(
            Level::Ok,
            K,
            format!("{}: a private key", key.display()),
        ));
    };
    match signing.public_key() {
        Some(public) if public.as_ref() == spki => out.push(Finding::new(
            Level::Ok,
            K,
            format!("{} matches {}", key.display(), cert.display()),
        )),
        Some(_) => out.push(
            Finding::new(
                Level::Failed,
                K,
                format!(
                    "the key in {} does not belong to the certificate {}",
                    key.display(),
                    cert.display()
                ),
            )
            .fix("point fleet.tls.key at the key the certificate request was made with"),
        ),
        None => out.push(Finding::new(
            Level::Warning,
            K,
            format!(
                "{}: cannot tell whether it matches {}",
                key.display(),
                cert.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn key_and_csr(dir: &Path, name: &str, extra: &[&str]) {
        let (key, csr, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("/CN={name}"),
        );
        let mut a = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ];
        a.extend(extra);
        openssl(dir, &a);
    }

    fn ca(dir: &Path, name: &str) {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                &subj,
            ],
        );
    }

    fn sign(dir: &Path, name: &str, ca: &str, extra: &[&str]) {
        let (csr, pem, cap, cak) = (
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{ca}.pem"),
            format!("{ca}.key"),
        );
        let mut a = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &cap,
            "-CAkey",
            &cak,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
        ];
        a.extend(extra);
        openssl(dir, &a);
    }

    fn failed(f: &[Finding]) -> Vec<(&'static str, String)> {
        f.iter()
            .filter(|f| f.level == Level::Failed)
            .map(|f| (f.check, f.detail.clone()))
            .collect()
    }

    #[test]
    fn a_good_v3_certificate_passes_and_each_fault_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        ca(p, "ca");
        ca(p, "other");
        std::fs::write(p.join("v3.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        key_and_csr(p, "good", &[]);
        sign(p, "good", "ca", &["-extfile", "v3.ext"]);
        key_and_csr(p, "v1", &[]);
        sign(p, "v1", "ca", &[]);
        key_and_csr(p, "copied", &["-addext", "extendedKeyUsage=clientAuth"]);
        sign(p, "copied", "ca", &["-copy_extensions", "copyall"]);
        key_and_csr(p, "stranger", &[]);
        sign(p, "stranger", "other", &["-extfile", "v3.ext"]);

        let client = |n: &str| (p.join(format!("{n}.pem")), p.join(format!("{n}.key")));
        let run = |n: &str, key: &str| {
            let (c, _) = client(n);
            inspect(&p.join("ca.pem"), Some((&c, &p.join(format!("{key}.key")))))
        };

        let good = run("good", "good");
        assert!(failed(&good).is_empty(), "{good:?}");
        assert_eq!(good.len(), 3, "one line per file: {good:?}");
        assert!(failed(&run("copied", "copied")).is_empty());

        let v1 = run("v1", "v1");
        let f = failed(&v1);
        assert_eq!(f.len(), 1, "{v1:?}");
        assert!(f[0].1.contains("version 1"), "{f:?}");
        let fix = v1.iter().find_map(|f| f.fix.clone()).unwrap();
        assert!(fix.contains("-extfile") && fix.contains("-copy_extensions"));

        let stranger = run("stranger", "stranger");
        assert!(failed(&stranger).is_empty(), "{stranger:?}");
        assert!(
            stranger
                .iter()
                .any(|f| f.level == Level::Warning && f.detail.contains("not signed by the CA")),
            "{stranger:?}"
        );

        let mismatch = failed(&run("good", "v1"));
        assert_eq!(mismatch.len(), 1);
        assert_eq!(mismatch[0].0, "fleet-key");

        let missing = inspect(&p.join("nope.pem"), None);
        assert!(failed(&missing)[0].1.contains("cannot read"));
        std::fs::write(p.join("junk.pem"), "hello").unwrap();
        assert_eq!(failed(&inspect(&p.join("junk.pem"), None)).len(), 1);
    }
}
