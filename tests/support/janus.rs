//! A local Janus for the room tests: writes a minimal configuration (only the
//! VideoRoom plugin and the WebSocket transport, on a chosen address and port) and starts Janus
//! from it, killing it by pid when dropped.
//!
//! Janus never gathers ICE candidates on the loopback interface, so a Janus meant for WebRTC must
//! see at least one other interface (a veth in a test's network namespace, or the machine's LAN
//! interface). Signalling may still listen on 127.0.0.1.

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A room written into the VideoRoom plugin's configuration, so it exists from start-up. Its
/// video is H.264, the box's only codec (Janus's default, VP8, would refuse the box's video),
/// unless `videocodec` says more.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticRoom {
    /// Numeric room id.
    pub id: u64,
    /// Description shown by `list`.
    pub description: String,
    /// Secret needed to edit, destroy or record the room; none when empty.
    pub secret: String,
    /// PIN needed to join; none when empty.
    pub pin: String,
    /// Most publishers at once.
    pub publishers: u32,
    /// Janus's `videocodec` list; "h264" when empty.
    pub videocodec: String,
}

/// What a generated Janus configuration contains.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address the WebSocket transport listens on.
    pub ws_ip: String,
    /// Port of the WebSocket transport.
    pub ws_port: u16,
    /// UDP ports Janus uses for media, `lo-hi`.
    pub rtp_port_range: (u16, u16),
    /// Interfaces Janus must not gather candidates on (prefixes), comma-separated.
    pub ice_ignore_list: String,
    /// Where recordings go.
    pub rec_dir: PathBuf,
    /// Rooms that exist from start-up.
    pub rooms: Vec<StaticRoom>,
    /// Janus log verbosity, 0..=7.
    pub debug_level: u8,
}

impl ServerConfig {
    /// A configuration on `ws_ip` with a free port picked now.
    pub fn new(ws_ip: &str, rec_dir: PathBuf) -> io::Result<ServerConfig> {
        Ok(ServerConfig {
            ws_ip: ws_ip.to_string(),
            ws_port: free_port(ws_ip)?,
            rtp_port_range: (20000, 40000),
            ice_ignore_list: "vmnet,docker,br-".into(),
            rec_dir,
            rooms: Vec::new(),
            debug_level: 4,
        })
    }

    /// The WebSocket URL clients connect to.
    pub fn url(&self) -> String {
        format!("ws://{}:{}", host_for_url(&self.ws_ip), self.ws_port)
    }

    /// Writes `janus.jcfg` and the plugin and transport files into `dir`, and links the two
    /// needed shared objects into `dir/plugins` and `dir/transports`.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let lib = janus_lib_dir()?;
        let plugins = dir.join("plugins");
        let transports = dir.join("transports");
        for (sub, so) in [
            (&plugins, lib.join("plugins/libjanus_videoroom.so")),
            (&transports, lib.join("transports/libjanus_websockets.so")),
        ] {
            std::fs::create_dir_all(sub)?;
            let name = so.file_name().unwrap_or_default().to_owned();
            let link = sub.join(name);
            if !link.exists() {
                std::os::unix::fs::symlink(&so, &link)?;
            }
        }
        std::fs::create_dir_all(&self.rec_dir)?;
        let empty = dir.join("none");
        std::fs::create_dir_all(&empty)?;
        let janus = format!(
            r#"general: {{
	configs_folder = "{dir}"
	plugins_folder = "{plugins}"
	transports_folder = "{transports}"
	events_folder = "{empty}"
	loggers_folder = "{empty}"
	debug_level = {debug}
	session_timeout = 60
	hide_dependencies = true
}}
certificates: {{
}}
media: {{
	rtp_port_range = "{lo}-{hi}"
}}
nat: {{
	nice_debug = false
	ice_ignore_list = "{ignore}"
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
}}
"#,
            dir = dir.display(),
            plugins = plugins.display(),
            transports = transports.display(),
            empty = empty.display(),
            debug = self.debug_level.min(7),
            lo = self.rtp_port_range.0,
            hi = self.rtp_port_range.1,
            ignore = self.ice_ignore_list,
        );
        std::fs::write(dir.join("janus.jcfg"), janus)?;
        let ws = format!(
            r#"general: {{
	json = "plain"
	ws = true
	ws_port = {port}
	ws_ip = "{ip}"
	wss = false
}}
admin: {{
	admin_ws = false
	admin_wss = false
}}
"#,
            port = self.ws_port,
            ip = self.ws_ip
        );
        std::fs::write(dir.join("janus.transport.websockets.jcfg"), ws)?;
        let mut vr = String::from("general: {\n}\n");
        for r in &self.rooms {
            let _ = write!(
                vr,
                "room-{id}: {{\n\tdescription = \"{desc}\"\n\tpublishers = {pubs}\n\tbitrate = 0\n\tfir_freq = 10\n\taudiolevel_event = true\n\taudio_active_packets = 50\n\taudio_level_average = 40\n\tvideocodec = \"{codec}\"\n\trec_dir = \"{rec}\"\n",
                id = r.id,
                desc = r.description.replace('"', "'"),
                pubs = r.publishers,
                codec = if r.videocodec.is_empty() { "h264" } else { r.videocodec.as_str() },
                rec = self.rec_dir.display()
            );
            if !r.secret.is_empty() {
                let _ = writeln!(vr, "\tsecret = \"{}\"", r.secret.replace('"', ""));
            }
            if !r.pin.is_empty() {
                let _ = writeln!(vr, "\tpin = \"{}\"", r.pin.replace('"', ""));
            }
            vr.push_str("}\n");
        }
        std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), vr)?;
        Ok(())
    }
}

/// A running Janus, killed (by pid) when dropped.
#[derive(Debug)]
pub struct JanusProcess {
    child: Child,
    /// The configuration it runs with.
    pub config: ServerConfig,
    /// Its configuration directory.
    pub dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

impl JanusProcess {
    /// Writes `config` into `dir`, starts Janus and waits (up to `timeout`) until its WebSocket
    /// port accepts connections.
    pub fn start(config: ServerConfig, dir: &Path, timeout: Duration) -> io::Result<JanusProcess> {
        config.write(dir)?;
        let log = dir.join("janus.log");
        let child = Command::new("janus")
            .arg("-C")
            .arg(dir.join("janus.jcfg"))
            .arg("-F")
            .arg(dir)
            .arg("-L")
            .arg(&log)
            .arg("-N")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut p = JanusProcess {
            child,
            config,
            dir: dir.to_path_buf(),
            log,
        };
        p.wait_ready(timeout)?;
        Ok(p)
    }

    fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let addr: SocketAddr = format!(
            "{}:{}",
            host_for_url(&self.config.ws_ip),
            self.config.ws_port
        )
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "janus exited with {status}; see {}",
                    self.log.display()
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("janus did not listen on {addr} within {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills Janus (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts Janus again with the same configuration and port.
    pub fn restart(&mut self, timeout: Duration) -> io::Result<()> {
        self.kill();
        let next = JanusProcess::start(self.config.clone(), &self.dir.clone(), timeout)?;
        // The old process is already reaped; dropping it kills nothing.
        drop(std::mem::replace(self, next));
        Ok(())
    }
}

impl Drop for JanusProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asks the kernel for a free TCP port on `ip`.
pub fn free_port(ip: &str) -> io::Result<u16> {
    let l = TcpListener::bind((ip, 0))?;
    Ok(l.local_addr()?.port())
}

fn host_for_url(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// Finds the directory holding Janus's `plugins` and `transports` (Debian's multiarch path).
pub fn janus_lib_dir() -> io::Result<PathBuf> {
    for base in ["/usr/lib", "/usr/local/lib", "/opt/janus/lib"] {
        let direct = Path::new(base).join("janus");
        if direct.join("plugins/libjanus_videoroom.so").exists() {
            return Ok(direct);
        }
        if let Ok(rd) = std::fs::read_dir(base) {
            for e in rd.flatten() {
                let p = e.path().join("janus");
                if p.join("plugins/libjanus_videoroom.so").exists() {
                    return Ok(p);
                }
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "Janus's VideoRoom plugin was not found; install the `janus` package",
    ))
}
