//! The fleet's topic tree (docs/mqtt-api.md):
//!
//! ```text
//! <prefix>/<device>/cmd/<command>          requests (QoS 1), answered on the response topic
//! <prefix>/<device>/reply                  replies to requests that named no response topic
//! <prefix>/<device>/state                  retained: the full agent state
//! <prefix>/<device>/events                 the event stream
//! <prefix>/<device>/status                 retained: online / offline (last will)
//! <prefix>/<device>/telemetry              periodic load, temperature, memory, disk, media
//! <prefix>/group/<name>/cmd/<command>      one command to every box of a group
//! ```

/// The topics of one box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    device: String,
    groups: Vec<String>,
}

/// Where a command came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Sent to this box alone.
    Device,
    /// Sent to one of its groups.
    Group(String),
}

impl Topics {
    /// The topics of `device` under `prefix`, taking commands for `groups` too.
    pub fn new(prefix: &str, device: &str, groups: &[String]) -> Topics {
        Topics {
            prefix: prefix.to_string(),
            device: device.to_string(),
            groups: groups.to_vec(),
        }
    }

    /// The device id.
    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn own(&self, leaf: &str) -> String {
        format!("{}/{}/{leaf}", self.prefix, self.device)
    }

    /// The retained state topic.
    pub fn state(&self) -> String {
        self.own("state")
    }

    /// The event stream.
    pub fn events(&self) -> String {
        self.own("events")
    }

    /// The retained online/offline status (and last will).
    pub fn status(&self) -> String {
        self.own("status")
    }

    pub fn telemetry(&self) -> String {
        self.own("telemetry")
    }

    /// Where replies go when a request names no response topic.
    pub fn reply(&self) -> String {
        self.own("reply")
    }

    /// Every filter to subscribe to: this box's commands and its groups'.
    pub fn filters(&self) -> Vec<String> {
        let mut f = vec![self.own("cmd/+")];
        for g in &self.groups {
            f.push(group_command(&self.prefix, g, "+"));
        }
        f
    }

    /// Splits a command topic into where it was sent and the command name; none for any other
    /// topic (including another box's or a group this box is not in).
    pub fn parse_command<'t>(&self, topic: &'t str) -> Option<(Target, &'t str)> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let mut parts = rest.splitn(4, '/');
        let first = parts.next()?;
        if first == "group" {
            let group = parts.next()?;
            if parts.next()? != "cmd" {
                return None;
            }
            let name = parts.next()?;
            if name.contains('/') || !self.groups.iter().any(|g| g == group) {
                return None;
            }
            return Some((Target::Group(group.to_string()), name));
        }
        if first != self.device || parts.next()? != "cmd" {
            return None;
        }
        let name = parts.next()?;
        if parts.next().is_some() || name.contains('/') {
            return None;
        }
        Some((Target::Device, name))
    }
}

/// The command topic of a device.
pub fn device_command(prefix: &str, device: &str, command: &str) -> String {
    format!("{prefix}/{device}/cmd/{command}")
}

/// The command topic of a group.
pub fn group_command(prefix: &str, group: &str, command: &str) -> String {
    format!("{prefix}/group/{group}/cmd/{command}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_for_this_box_and_its_groups_only() {
        let t = Topics::new("rb/site", "box1", &["lobby".into()]);
        assert_eq!(
            t.parse_command("rb/site/box1/cmd/ping"),
            Some((Target::Device, "ping"))
        );
        assert_eq!(
            t.parse_command("rb/site/group/lobby/cmd/leave"),
            Some((Target::Group("lobby".into()), "leave"))
        );
        for other in [
            "rb/site/box2/cmd/ping",
            "rb/site/group/hall/cmd/ping",
            "rb/site/box1/state",
            "rb/site/box1/cmd/a/b",
            "rb/box1/cmd/ping",
            "rb/sitebox1/cmd/ping",
        ] {
            assert_eq!(t.parse_command(other), None, "{other}");
        }
        assert_eq!(
            t.filters(),
            vec!["rb/site/box1/cmd/+", "rb/site/group/lobby/cmd/+"]
        );
    }
}
