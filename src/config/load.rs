//! Reading, merging and checking configuration files, with errors that point at a file and line.

use super::{Config, FieldError};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the daemon looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/roombox/roombox.toml";

/// Largest configuration file read, in bytes.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A configuration problem, located as precisely as it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the offending value came from; none for the embedded default.
    pub file: Option<PathBuf>,
    /// 1-based line in that file.
    pub line: Option<usize>,
    /// Dotted path of the field.
    pub field: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            _ => {}
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A loaded, validated configuration and the files it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The files merged, in order; empty when the embedded default was used.
    pub files: Vec<PathBuf>,
}

struct Source {
    path: PathBuf,
    text: String,
}

/// Loads `path` (or [`DEFAULT_PATH`], or the embedded default when neither exists) with its
/// `config.d/*.toml` drop-ins, and validates the result. Returns every problem found.
pub fn load(path: Option<&Path>) -> Result<Loaded, Vec<ConfigError>> {
    let main = match path {
        Some(p) => Some(p.to_path_buf()),
        None if Path::new(DEFAULT_PATH).exists() => Some(PathBuf::from(DEFAULT_PATH)),
        None => None,
    };
    let Some(main) = main else {
        return load_sources(Vec::new());
    };
    read_all(files_of(&main), None)
}

/// The main file and its `config.d/*.toml` drop-ins, in merge order.
fn files_of(main: &Path) -> Vec<PathBuf> {
    let mut files = vec![main.to_path_buf()];
    let dropin = main
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("config.d");
    if let Ok(rd) = std::fs::read_dir(&dropin) {
        let mut extra: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        extra.sort();
        files.extend(extra);
    }
    files
}

/// Reads and merges `files`; `stand_in` gives one file's text instead of its content on disk.
fn read_all(
    files: Vec<PathBuf>,
    stand_in: Option<(&Path, &str)>,
) -> Result<Loaded, Vec<ConfigError>> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        if let Some((p, text)) = stand_in {
            if f == p {
                sources.push(Source {
                    path: f,
                    text: text.to_string(),
                });
                continue;
            }
        }
        match read_limited(&f) {
            Ok(text) => sources.push(Source { path: f, text }),
            Err(message) => errors.push(ConfigError {
                file: Some(f),
                line: None,
                field: None,
                message,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    load_sources(sources)
}

/// Loads `main` with its drop-ins as [`load`] does, but with `text` standing in for the drop-in
/// `dropin` (a `config.d/*.toml` path, added when absent): checks a candidate before it is
/// written (the fleet's `set-config`).
pub fn load_candidate(main: &Path, dropin: &Path, text: &str) -> Result<Loaded, Vec<ConfigError>> {
    let mut files = files_of(main);
    if !files.iter().any(|f| f == dropin) {
        files.push(dropin.to_path_buf());
        files[1..].sort();
    }
    read_all(files, Some((dropin, text)))
}

/// Loads as [`load`] does, for the root installer of updates (`roombox update-apply`), which
/// runs the commands and trusts the keys the configuration names: a file counts only if it is
/// owned by root or this process's user and neither its group nor others may write it. A
/// drop-in that is not (`90-fleet.toml`, which the unprivileged agent writes into the
/// group-writable `config.d/` on `set-config`) is left out, with a warning; a main file that is
/// not is an error. The second value lists what was left out and why.
pub fn load_trusted(path: Option<&Path>) -> Result<(Loaded, Vec<String>), Vec<ConfigError>> {
    let main = match path {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
        None => return load_sources(Vec::new()).map(|l| (l, Vec::new())),
    };
    if let Err(message) = trusted(&main) {
        return Err(vec![ConfigError {
            file: Some(main),
            line: None,
            field: None,
            message,
        }]);
    }
    let mut left_out = Vec::new();
    let mut files = files_of(&main);
    files.retain(|f| match trusted(f) {
        Ok(()) => true,
        Err(why) => {
            left_out.push(format!("{}: {why}", f.display()));
            false
        }
    });
    read_all(files, None).map(|l| (l, left_out))
}

/// Whether a root process may take instructions from `path`.
fn trusted(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != 0 && md.uid() != me {
        return Err(format!(
            "owned by uid {}, neither root nor this user: not trusted by the installer",
            md.uid()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "mode {:o}: its group or others may write it: not trusted by the installer",
            md.mode() & 0o777
        ));
    }
    Ok(())
}

/// Loads one configuration from a string (tests, `set-config` payloads). `name` labels errors.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, Vec<ConfigError>> {
    load_sources(vec![Source {
        path: PathBuf::from(name),
        text: text.to_string(),
    }])
}

fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "is {} bytes; a config file may be at most {MAX_FILE_BYTES}",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn load_sources(sources: Vec<Source>) -> Result<Loaded, Vec<ConfigError>> {
    let mut merged = toml::Table::new();
    let mut errors = Vec::new();
    for s in &sources {
        match s.text.parse::<toml::Table>() {
            Ok(t) => merge(&mut merged, t),
            Err(e) => errors.push(ConfigError {
                file: Some(s.path.clone()),
                line: e.span().map(|r| line_of(&s.text, r.start)),
                field: None,
                message: format!("not valid TOML: {}", e.message().trim()),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut config: Config = match serde_path_to_error::deserialize(toml::Value::Table(merged)) {
        Ok(c) => c,
        Err(e) => {
            let path: Vec<String> = e
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    _ => None,
                })
                .collect();
            let message = e.into_inner().to_string();
            return Err(vec![locate(&sources, &path, message.trim().to_string())]);
        }
    };
    if sources
        .first()
        .is_some_and(|s| s.path == Path::new(DEFAULT_PATH))
    {
        config.layout = super::Layout::Installed;
    }
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|FieldError { field, message }| {
                let path: Vec<String> = field.split('.').map(str::to_string).collect();
                locate(&sources, &path, message)
            })
            .collect());
    }
    Ok(Loaded {
        config,
        files: sources.into_iter().map(|s| s.path).collect(),
    })
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Finds the last file that sets `path` (or its longest present prefix) and its line.
fn locate(sources: &[Source], path: &[String], message: String) -> ConfigError {
    let field = (!path.is_empty()).then(|| path.join("."));
    for depth in (1..=path.len()).rev() {
        for s in sources.iter().rev() {
            if let Some(offset) = span_of(&s.text, &path[..depth]) {
                return ConfigError {
                    file: Some(s.path.clone()),
                    line: Some(line_of(&s.text, offset)),
                    field,
                    message,
                };
            }
        }
    }
    ConfigError {
        file: sources.last().map(|s| s.path.clone()),
        line: None,
        field,
        message,
    }
}

/// The byte offset of the key at `path` in a TOML text, if the text sets it.
fn span_of(text: &str, path: &[String]) -> Option<usize> {
    enum Node<'a> {
        Table(&'a toml_edit::Table),
        Inline(&'a toml_edit::InlineTable),
        Array(&'a toml_edit::ArrayOfTables),
        Leaf,
    }
    fn of_item(item: &toml_edit::Item) -> Node<'_> {
        match item {
            toml_edit::Item::Table(t) => Node::Table(t),
            toml_edit::Item::ArrayOfTables(a) => Node::Array(a),
            toml_edit::Item::Value(v) => of_value(v),
            toml_edit::Item::None => Node::Leaf,
        }
    }
    fn of_value(v: &toml_edit::Value) -> Node<'_> {
        match v {
            toml_edit::Value::InlineTable(t) => Node::Inline(t),
            _ => Node::Leaf,
        }
    }
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut node = Node::Table(doc.as_table());
    let mut offset = None;
    for seg in path {
        let found = match node {
            Node::Table(t) => t.get_key_value(seg).map(|(k, it)| (k.span(), of_item(it))),
            Node::Inline(t) => t.get_key_value(seg).map(|(k, v)| (k.span(), of_item(v))),
            Node::Array(a) => seg
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .map(|t| (t.span(), Node::Table(t))),
            Node::Leaf => None,
        };
        match found {
            Some((span, next)) => {
                offset = span.map(|r| r.start).or(offset);
                node = next;
            }
            // Only a full match counts; `locate` tries the shorter prefixes itself.
            None => return None,
        }
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn err(text: &str) -> Vec<ConfigError> {
        load_str("test.toml", text).unwrap_err()
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let l = load_sources(Vec::new()).unwrap();
        assert_eq!(l.config, Config::default());
    }

    #[test]
    fn the_installed_config_resolves_to_the_units_directories() {
        // The CLI on a board runs outside the unit (no $STATE_DIRECTORY): reading the package's
        // config must still find the agent the unit runs, not ./roombox-data.
        let main = Path::new(DEFAULT_PATH);
        let l = read_all(vec![main.to_path_buf()], Some((main, ""))).unwrap();
        assert_eq!(l.config.layout, super::super::Layout::Installed);
        if std::env::var_os("STATE_DIRECTORY").is_none()
            && std::env::var_os("RUNTIME_DIRECTORY").is_none()
        {
            assert_eq!(l.config.state_dir(), Path::new("/var/lib/roombox"));
            assert_eq!(
                l.config.control_socket(),
                Path::new("/run/roombox/control.sock")
            );
            assert_eq!(l.config.hls_dir(), Path::new("/run/roombox/hls"));
        }
        // Any other file (a clone's own, a test's) keeps the development layout.
        let own = load_str("/home/me/roombox.toml", "").unwrap().config;
        assert_eq!(own.layout, super::super::Layout::Development);
        // And the unit names the same directories.
        let unit = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/systemd/roombox.service"
        ))
        .unwrap();
        let state = super::super::INSTALLED_STATE_DIR.trim_start_matches("/var/lib/");
        let runtime = super::super::INSTALLED_RUNTIME_DIR.trim_start_matches("/run/");
        assert!(unit.contains(&format!("\nStateDirectory={state}\n")));
        assert!(unit.contains(&format!("\nRuntimeDirectory={runtime}\n")));
        assert!(unit.contains(&format!("--config {DEFAULT_PATH} ")));
    }

    #[test]
    fn the_documented_example_files_are_valid() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
        let mut seen = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                if let Err(errs) = load_str(&p.display().to_string(), &text) {
                    panic!("{}: {:?}", p.display(), errs);
                }
                seen += 1;
            }
        }
        assert!(seen >= 4, "expected roombox.toml and three board examples");
    }

    #[test]
    fn unknown_key_names_file_line_and_field() {
        let e = err("[media]\n\n[media.video]\nfps = 30\nfsp = 25\n");
        assert_eq!(e.len(), 1);
        let e = &e[0];
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.field.as_deref(), Some("media.video.fsp"));
        assert!(e.message.contains("unknown field `fsp`"), "{e}");
        assert!(
            e.to_string().starts_with("test.toml:5: media.video.fsp: "),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_what_was_expected() {
        let e = &err("[media.video]\nwidth = \"wide\"\n")[0];
        assert_eq!(e.line, Some(2));
        assert_eq!(e.field.as_deref(), Some("media.video.width"));
        assert!(e.message.contains("expected u32"), "{e}");
    }

    #[test]
    fn bad_enum_lists_the_choices() {
        let e = &err("[media.video]\nsource = \"webcam\"\n")[0];
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("v4l2"), "{e}");
    }

    #[test]
    fn a_file_mic_that_does_not_exist_is_a_config_error() {
        let e = &err("[media.audio]\nsource = \"file\"\nfile = \"/nonexistent/speech.wav\"\n")[0];
        assert_eq!(e.field.as_deref(), Some("media.audio.file"));
        assert!(e.message.contains("/nonexistent/speech.wav"), "{e}");
        assert_eq!(
            err("[media.audio]\nsource = \"file\"\n")[0]
                .field
                .as_deref(),
            Some("media.audio.file")
        );
    }

    #[test]
    fn bad_duration_is_reported() {
        let e = &err("[recording]\nsegment = \"ten seconds\"\n")[0];
        assert_eq!(e.field.as_deref(), Some("recording.segment"));
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn syntax_error_gives_the_line() {
        let e = &err("[media.video]\nfps = 30\nwidth = = 3\n")[0];
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("not valid TOML"));
    }

    #[test]
    fn each_range_violation_is_its_own_error() {
        let e = err(
            "[media.video]\nwidth = 100\nheight = 721\nfps = 0\n\n[media.audio]\nrate = 44100\n\n[recording]\nsegment = \"1s\"\n",
        );
        let fields: Vec<_> = e.iter().filter_map(|e| e.field.clone()).collect();
        for f in [
            "media.video.width",
            "media.video.height",
            "media.video.fps",
            "media.audio.rate",
            "recording.segment",
        ] {
            assert!(fields.contains(&f.to_string()), "missing {f} in {fields:?}");
        }
        let fps = e
            .iter()
            .find(|e| e.field.as_deref() == Some("media.video.fps"))
            .unwrap();
        assert_eq!(fps.line, Some(4));
        assert!(fps.message.contains("expected 1 to 60"), "{fps}");
    }

    #[test]
    fn bitrate_must_sit_between_its_bounds() {
        let e = err("[media.video]\nbitrate_kbps = 9000\nmax_bitrate_kbps = 4000\n");
        assert_eq!(e[0].field.as_deref(), Some("media.video.bitrate_kbps"));
        assert_eq!(e[0].line, Some(2));
    }

    #[test]
    fn dropins_merge_in_order_and_errors_point_at_the_dropin() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("roombox.toml");
        std::fs::write(
            &main,
            "[media.video]\nfps = 30\nwidth = 640\nheight = 360\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("config.d")).unwrap();
        std::fs::write(
            dir.path().join("config.d/10-a.toml"),
            "[media.video]\nfps = 15\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config.d/20-b.toml"),
            "[media.video]\nfps = 25\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("config.d/ignored.txt"), "garbage").unwrap();
        let l = load(Some(&main)).unwrap();
        assert_eq!(l.config.media.video.fps, 25);
        assert_eq!(l.config.media.video.width, 640);
        assert_eq!(l.files.len(), 3);

        let mut f = std::fs::File::create(dir.path().join("config.d/30-c.toml")).unwrap();
        writeln!(f, "# too fast\n[media.video]\nfps = 120").unwrap();
        let e = &load(Some(&main)).unwrap_err()[0];
        assert!(e.file.as_ref().unwrap().ends_with("30-c.toml"), "{e}");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let e = &load(Some(Path::new("/nonexistent/roombox.toml"))).unwrap_err()[0];
        assert!(
            e.to_string()
                .contains("/nonexistent/roombox.toml: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn the_installer_leaves_out_drop_ins_others_may_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("roombox.toml");
        std::fs::write(&main, "[update]\nhealth_deadline = \"1m\"\n").unwrap();
        std::fs::create_dir(dir.path().join("config.d")).unwrap();
        let site = dir.path().join("config.d/20-site.toml");
        std::fs::write(&site, "[update]\nhealth_deadline = \"2m\"\n").unwrap();
        for f in [&main, &site] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let fleet = dir.path().join("config.d/90-fleet.toml");
        std::fs::write(&fleet, "[update]\nallow_unsigned = true\n").unwrap();
        std::fs::set_permissions(&fleet, std::fs::Permissions::from_mode(0o660)).unwrap();
        let (l, left_out) = load_trusted(Some(&main)).unwrap();
        assert_eq!(l.config.update.health_deadline.as_secs(), 120);
        assert!(
            !l.config.update.allow_unsigned,
            "the group-writable drop-in counted"
        );
        assert_eq!(left_out.len(), 1);
        assert!(
            left_out[0].contains("90-fleet.toml: mode 660"),
            "{left_out:?}"
        );
        // The agent's load takes every drop-in.
        assert!(load(Some(&main)).unwrap().config.update.allow_unsigned);
        std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = load_trusted(Some(&main)).unwrap_err();
        assert!(e[0].message.contains("mode 666"), "{e:?}");
    }
}
