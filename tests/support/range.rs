//! The update tests' package server (`range_server.py`): files from a temp dir on 127.0.0.1
//! with an ephemeral port, `Range: bytes=N-` answered with 206, a cut on demand, every request
//! logged; stopped by pid on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RangeServer {
    child: Child,
    pub port: u16,
    /// Where the served files are.
    pub dir: PathBuf,
    log: PathBuf,
}

impl RangeServer {
    /// Serves `dir`; `range` false makes it ignore Range headers (always 200, whole file).
    pub fn start(dir: &Path, range: bool) -> RangeServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/range_server.py");
        let port_file = dir.join(".port");
        let log = dir.join(".requests.log");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--dir")
            .arg(dir)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log);
        if !range {
            cmd.arg("--no-range");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start range_server.py");
        let mut s = RangeServer {
            child,
            port: 0,
            dir: dir.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                s.port = p.trim().parse().expect("a port");
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("range_server.py did not start");
    }

    /// The URL of a served file.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// The next answer for `name` stops after `bytes` of its body and closes the connection.
    pub fn cut_next(&self, name: &str, bytes: u64) {
        std::fs::write(self.dir.join(format!("{name}.cut")), bytes.to_string()).unwrap();
    }

    /// Every request so far: `(path, Range header)`.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (p, r) = l.split_once(' ')?;
                Some((p.to_string(), (r != "-").then(|| r.to_string())))
            })
            .collect()
    }
}

impl Drop for RangeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
