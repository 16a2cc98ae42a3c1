//! The settings of a process that holds a listener, as it runs: read from its command line or
//! from the configuration file its command line names, else the runtime's default. Recorded
//! with the owners (`Snapshot::settings`), at most once per process; what could not be read is
//! absent, never guessed.

use serde::{Deserialize, Serialize};

/// One setting of one process, with where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub pid: u32,
    /// The runtime's own name for it, as its configuration file spells it: `max_connections`,
    /// `workers`, `maxconn`, `pm.max_children`.
    pub name: String,
    pub value: SettingValue,
    pub source: SettingSource,
    /// As it was written where it was read: `-c max_connections=5`, `--workers 2`,
    /// `maxconn 20`; empty for a default.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub written: String,
    /// The section of the configuration it belongs to, where a file has several that apply to
    /// different sockets (HAProxy's `frontend web`, php-fpm's `[www]`); None: the whole process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<Section>,
}

/// A setting's value: a number, or `auto` (nginx's `worker_processes auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingValue {
    Number(u64),
    /// Chosen by the program at its start (one per CPU for nginx).
    Auto,
}

/// Where a setting's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SettingSource {
    /// The process's command line (`/proc/PID/cmdline`): it overrides the configuration file.
    CommandLine,
    /// A configuration file, by the path the process knows it by (inside its own root), and
    /// the line the winning assignment is on.
    ConfigFile { path: String, line: u32 },
    /// Neither says: the runtime's default.
    Default,
}

/// A part of a configuration that applies to some sockets only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// `frontend web`, `www`.
    pub name: String,
    /// What it listens on, as written: `127.0.0.1:9000`, `/run/php/php8.2-fpm.sock`, `:80`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
}

impl Setting {
    /// The number, unless it is `auto`.
    pub fn number(&self) -> Option<u64> {
        match self.value {
            SettingValue::Number(n) => Some(n),
            SettingValue::Auto => None,
        }
    }

    pub fn on_command_line(&self) -> bool {
        self.source == SettingSource::CommandLine
    }

    /// How it would be written with the value `n` instead, in the same place and form:
    /// `-c max_connections=5` → `-c max_connections=2048`. None for a default, or when the
    /// value is not where it ends.
    pub fn written_with(&self, n: u64) -> Option<String> {
        let now = match self.value {
            SettingValue::Number(v) => v.to_string(),
            SettingValue::Auto => "auto".to_string(),
        };
        let text = self.written.trim_end_matches(';');
        let end = &self.written[text.len()..];
        let head = text.strip_suffix(&now)?;
        Some(format!("{head}{n}{end}"))
    }
}

impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::Number(n) => write!(f, "{n}"),
            SettingValue::Auto => f.write_str("auto"),
        }
    }
}

/// In JSON, a number or `"auto"`.
impl Serialize for SettingValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SettingValue::Number(n) => s.serialize_u64(*n),
            SettingValue::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SettingValue, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(SettingValue::Number(n)),
            Raw::Word(w) if w == "auto" => Ok(SettingValue::Auto),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "a setting's value is a number or \"auto\", not {w:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_cmdline(written: &str, value: u64) -> Setting {
        Setting {
            pid: 1,
            name: "max_connections".into(),
            value: SettingValue::Number(value),
            source: SettingSource::CommandLine,
            written: written.into(),
            section: None,
        }
    }

    #[test]
    fn a_setting_is_rewritten_in_its_own_form() {
        let cases = [
            ("-c max_connections=5", 5, "-c max_connections=2048"),
            ("--backlog 16", 16, "--backlog 2048"),
            ("--workers=2", 2, "--workers=2048"),
            ("-w2", 2, "-w2048"),
            ("backlog=16;", 16, "backlog=2048;"),
        ];
        for (written, value, want) in cases {
            assert_eq!(
                on_cmdline(written, value).written_with(2048).as_deref(),
                Some(want)
            );
        }
        assert_eq!(on_cmdline("", 100).written_with(2048), None);
    }

    #[test]
    fn reads_back_what_it_writes() {
        let mut s = on_cmdline("-c max_connections=5", 5);
        s.section = Some(Section {
            name: "frontend fe".into(),
            listen: vec![":8080".into()],
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["value"], 5);
        assert_eq!(json["source"]["kind"], "command-line");
        assert_eq!(serde_json::from_value::<Setting>(json).unwrap(), s);
        let auto = Setting {
            value: SettingValue::Auto,
            source: SettingSource::ConfigFile {
                path: "/etc/nginx/nginx.conf".into(),
                line: 3,
            },
            ..on_cmdline("worker_processes auto;", 0)
        };
        let json = serde_json::to_value(&auto).unwrap();
        assert_eq!(json["value"], "auto");
        assert_eq!(json["source"]["path"], "/etc/nginx/nginx.conf");
        assert_eq!(serde_json::from_value::<Setting>(json).unwrap(), auto);
        assert!(serde_json::from_value::<SettingValue>(serde_json::json!("many")).is_err());
    }
}
