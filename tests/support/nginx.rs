//! nginx with the RTMP module on 127.0.0.1 with an ephemeral port, in a temporary directory,
//! recording every stream it receives as FLV. Stopped by pid on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) RTMP ingest.
pub struct NginxRtmp {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (config, logs, recordings).
    pub dir: tempfile::TempDir,
}

impl NginxRtmp {
    /// Starts nginx-rtmp with application `live` recording to `<dir>/rec`.
    pub fn start() -> NginxRtmp {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = super::mosquitto::free_port();
        std::fs::create_dir_all(dir.path().join("rec")).expect("rec dir");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {dir}/logs/error.log info;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record all; record_path {dir}/rec; record_unique on;\n\
                 drop_idle_publisher 3s; }} }} }}\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write conf");
        let mut n = NginxRtmp {
            child: None,
            port,
            dir,
        };
        n.run();
        n
    }

    fn run(&mut self) {
        let child = Command::new("nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `rtmp://127.0.0.1:<port>/live`.
    pub fn url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live", self.port)
    }

    /// The FLV files recorded so far.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("rec"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The error log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// Kills it (SIGKILL, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// The recorded directory.
    pub fn rec_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        self.stop();
    }
}
