//! Merging the configuration layers and checking them against the schema
//! that the embedded defaults define (every key has a default there).

use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{Config, DEFAULT_TOML, ENV_PREFIX, Problem};

/// One configuration layer.
#[derive(Debug, Clone)]
pub enum Source {
    /// The embedded defaults.
    Embedded,
    /// A TOML file; it may hold only the keys it changes.
    File(PathBuf),
    /// A TOML text as a file holds it, named `origin` in problems.
    Text { origin: String, text: String },
    /// Environment variables (`AMOSKYS_SECTION__KEY=value`); variables without
    /// the prefix, or without a `__`, are not configuration and are ignored.
    Env(Vec<(String, String)>),
    /// `key.path=value` overrides from the command line.
    Set(Vec<String>),
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not valid TOML: {message}")]
    Syntax { origin: String, message: String },
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    format!(
        "{} configuration problem(s):\n  {}",
        problems.len(),
        lines.join("\n  ")
    )
}

impl ConfigError {
    /// The individual problems, when the error is about keys and values.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
            _ => &[],
        }
    }
}

impl Config {
    /// Merges the layers in order and deserialises the result. Unknown keys
    /// and wrongly typed values in any layer are all reported together; use
    /// [`Config::validate`] afterwards for the meaning of the values.
    pub fn load(sources: &[Source]) -> Result<Config, ConfigError> {
        let schema = parse(DEFAULT_TOML, "embedded defaults")?;
        let mut merged = schema.clone();
        let mut problems = Vec::new();
        for source in sources {
            let (origin, layer) = match source {
                Source::Embedded => continue,
                Source::File(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    (
                        path.display().to_string(),
                        parse(&text, &path.display().to_string())?,
                    )
                }
                Source::Text { origin, text } => (origin.clone(), parse(text, origin)?),
                Source::Env(vars) => (
                    "environment".to_owned(),
                    env_layer(vars, &schema, &mut problems),
                ),
                Source::Set(items) => {
                    ("--set".to_owned(), set_layer(items, &schema, &mut problems))
                }
            };
            check_against(&layer, &schema, "", &origin, &mut problems);
            merge(&mut merged, layer);
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| {
                ConfigError::Invalid(vec![Problem::new("", e.message().to_owned())])
            })
    }

    /// Loads the defaults, a file, the process environment and `--set`
    /// overrides: what `amoskys run` uses. The file is `file` when given,
    /// else the one [`default_file`] finds (`$AMOSKYS_CONFIG`, or
    /// `/etc/amoskys/amoskys.toml` when it exists).
    pub fn load_for_run(file: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
        let mut sources = vec![Source::Embedded];
        let file = file.map(Path::to_owned).or_else(|| {
            default_file(
                std::env::var_os(CONFIG_FILE_ENV),
                Path::new(SYSTEM_CONFIG_FILE),
            )
        });
        if let Some(path) = file {
            sources.push(Source::File(path));
        }
        sources.push(Source::Env(std::env::vars().collect()));
        sources.push(Source::Set(sets.to_vec()));
        Config::load(&sources)
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// The configuration file of a packaged node, loaded when present and no
/// `--config` is given.
pub const SYSTEM_CONFIG_FILE: &str = "/etc/amoskys/amoskys.toml";

/// Environment variable naming the file to load when no `--config` is given;
/// set but empty, no file is loaded (not even [`SYSTEM_CONFIG_FILE`]).
pub const CONFIG_FILE_ENV: &str = "AMOSKYS_CONFIG";

/// The file to load when no `--config` is given: the one `env` (the value of
/// [`CONFIG_FILE_ENV`]) names, none when it is empty, else `system` if it
/// exists. A named file that is missing is an error when it is read.
pub fn default_file(env: Option<std::ffi::OsString>, system: &Path) -> Option<PathBuf> {
    match env {
        Some(named) if named.is_empty() => None,
        Some(named) => Some(PathBuf::from(named)),
        None => system.is_file().then(|| system.to_owned()),
    }
}

fn parse(text: &str, origin: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Syntax {
        origin: origin.to_owned(),
        message: e.to_string().trim().to_owned(),
    })
}

/// Every key of `layer` must exist in `schema` with a value of the same type.
fn check_against(
    layer: &Table,
    schema: &Table,
    prefix: &str,
    origin: &str,
    out: &mut Vec<Problem>,
) {
    for (key, value) in layer {
        let path = join(prefix, key);
        let Some(expected) = schema.get(key) else {
            let known: Vec<&str> = schema.keys().map(String::as_str).collect();
            out.push(Problem::new(
                &path,
                format!(
                    "unknown key in {origin} (expected one of: {})",
                    known.join(", ")
                ),
            ));
            continue;
        };
        match (expected, value) {
            (Value::Table(s), Value::Table(l)) => check_against(l, s, &path, origin, out),
            (Value::Array(_), Value::Array(items)) => check_items(items, &path, origin, out),
            (e, v) if e.type_str() == v.type_str() => {}
            (e, v) => out.push(Problem::new(
                &path,
                format!(
                    "expected {}, found {} in {origin}",
                    article(e.type_str()),
                    describe(v)
                ),
            )),
        }
    }
}

/// Items of an array are strings, or tables of the array's item schema.
fn check_items(items: &[Value], path: &str, origin: &str, out: &mut Vec<Problem>) {
    let schema = item_schema(path);
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match (&schema, item) {
            (Some(s), Value::Table(t)) => check_against(t, s, &item_path, origin, out),
            (None, Value::String(_)) => {}
            (s, other) => out.push(Problem::new(
                &item_path,
                format!(
                    "expected {}, found {} in {origin}",
                    if s.is_some() { "a table" } else { "a string" },
                    describe(other)
                ),
            )),
        }
    }
}

/// Schemas of the items of arrays of tables, keyed by the array's path.
/// Every key an item may have is listed with its default.
fn item_schema(path: &str) -> Option<Table> {
    match path {
        "sensors.snmp.devices" => super::SNMP_DEVICE_TOML.parse::<Table>().ok(),
        "outputs" => super::OUTPUT_TOML.parse::<Table>().ok(),
        "sensors.mqtt.topics" => super::MQTT_TOPIC_TOML.parse::<Table>().ok(),
        _ => None,
    }
}

fn env_layer(vars: &[(String, String)], schema: &Table, out: &mut Vec<Problem>) -> Table {
    let mut layer = Table::new();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        insert(&mut layer, &path, raw, schema, name, out);
    }
    layer
}

fn set_layer(items: &[String], schema: &Table, out: &mut Vec<Problem>) -> Table {
    let mut layer = Table::new();
    for item in items {
        let Some((key, raw)) = item.split_once('=') else {
            out.push(Problem::new(
                item,
                "--set expects key.path=value".to_owned(),
            ));
            continue;
        };
        let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        insert(&mut layer, &path, raw.trim(), schema, key, out);
    }
    layer
}

/// Inserts a raw override at `path`, typed like the default at that path: a
/// string key takes the raw text, others parse it as a TOML value.
fn insert(
    layer: &mut Table,
    path: &[String],
    raw: &str,
    schema: &Table,
    origin: &str,
    out: &mut Vec<Problem>,
) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut expected = Some(schema);
    let mut table = layer;
    for part in parents {
        expected = expected.and_then(|t| t.get(part)).and_then(Value::as_table);
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(next) = entry else {
            out.push(Problem::new(
                &path.join("."),
                format!("{origin} sets a value under a non-table key"),
            ));
            return;
        };
        table = next;
    }
    let value = match expected.and_then(|t| t.get(last)) {
        Some(Value::String(_)) => Value::String(raw.to_owned()),
        _ => match format!("v = {raw}").parse::<Table>() {
            Ok(mut t) => t.remove("v").unwrap_or(Value::String(raw.to_owned())),
            Err(_) => Value::String(raw.to_owned()),
        },
    };
    table.insert(last.clone(), value);
}

fn merge(base: &mut Table, layer: Table) {
    for (key, value) in layer {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(l)) => merge(b, l),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn article(type_str: &str) -> String {
    match type_str {
        "integer" | "array" => format!("an {type_str}"),
        other => format!("a {other}"),
    }
}

fn describe(v: &Value) -> String {
    struct Short<'a>(&'a Value);
    impl fmt::Display for Short<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Value::Table(_) => f.write_str("a table"),
                Value::Array(_) => f.write_str("an array"),
                v => write!(f, "{} {v}", article(v.type_str())),
            }
        }
    }
    Short(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_file_is_the_default_only_when_it_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let system = dir.path().join("amoskys.toml");
        assert_eq!(default_file(None, &system), None);
        std::fs::write(&system, "").expect("write");
        assert_eq!(default_file(None, &system), Some(system.clone()));
    }

    #[test]
    fn the_environment_names_another_file_or_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let system = dir.path().join("amoskys.toml");
        std::fs::write(&system, "").expect("write");
        assert_eq!(
            default_file(Some("/srv/node.toml".into()), &system),
            Some(PathBuf::from("/srv/node.toml"))
        );
        assert_eq!(default_file(Some("".into()), &system), None);
    }
}
