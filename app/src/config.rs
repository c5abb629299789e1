//! Configuration: built-in defaults < TOML file < `CROSSCUT_*` environment < command-line flags.
//!
//! Every source is merged into one JSON-like table first and deserialized once, so a value has the
//! same syntax and the same error message wherever it came from, and [`Config::validate`] is the
//! only place that knows the rules. Errors name the field: the binary prints them on one line and
//! exits with status 2.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The demo server's configuration, as `CONTRACT.md` section 1 lists it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Open connections past which new ones are answered 503 and closed.
    pub max_connections: usize,
    /// Time a plain HTTP handler may run before the client gets 408.
    pub request_timeout_secs: u64,
    /// gzip/brotli responses for clients that accept them.
    pub enable_compression: bool,
    /// Allowed CORS origins, exact match; `*` allows any origin (without credentials).
    pub cors_origins: Vec<String>,
    /// HS256 secret for bearer tokens, at least 32 bytes; a random one is generated when absent.
    pub jwt_secret: Option<String>,
    /// Average requests a second allowed per client.
    pub rate_limit_per_second: u32,
    /// Requests a client may send at once before the average applies.
    pub rate_limit_burst: u32,
    /// CIDRs of reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Access-log and diagnostics format.
    pub log_format: LogFormat,
    /// Send `X-Active-Connections` and `X-Total-Requests` on every response.
    pub expose_connection_headers: bool,
    /// Time in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Seconds between the server's WebSocket pings (not in the contract's list; contract value).
    pub ws_ping_interval_secs: u64,
    /// Seconds without a pong before a WebSocket is closed (not in the contract's list; contract value).
    pub ws_pong_timeout_secs: u64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".to_owned(),
            port: 8080,
            max_connections: 10_000,
            request_timeout_secs: 30,
            enable_compression: true,
            cors_origins: vec!["*".to_owned()],
            jwt_secret: None,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Text,
            expose_connection_headers: true,
            shutdown_grace_secs: 30,
            max_body_bytes: 1_048_576,
            ws_ping_interval_secs: 30,
            ws_pong_timeout_secs: 60,
        }
    }
}

// Hand-written so that the secret never reaches a log line through `{:?}`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("max_connections", &self.max_connections)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("enable_compression", &self.enable_compression)
            .field("cors_origins", &self.cors_origins)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("log_format", &self.log_format)
            .field("expose_connection_headers", &self.expose_connection_headers)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("ws_ping_interval_secs", &self.ws_ping_interval_secs)
            .field("ws_pong_timeout_secs", &self.ws_pong_timeout_secs)
            .finish()
    }
}

/// A configuration problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field (or source) at fault.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Command line of `crosscut-demo`.
#[derive(Debug, Parser)]
#[command(
    name = "crosscut-demo",
    version,
    about = "Demo server built from the crosscut layers"
)]
pub struct Cli {
    /// Optional subcommand; without one the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Configuration flags (highest precedence).
    #[command(flatten)]
    pub flags: Flags,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a signed HS256 token for the configured `jwt_secret` and exit.
    Token {
        /// Subject (`sub` claim).
        #[arg(long)]
        sub: String,
        /// Comma-separated permissions (`perms` claim), e.g. `read,write`.
        #[arg(long, default_value = "read")]
        perm: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

/// Flags that override the configuration. Values use the same syntax as the environment variables.
#[derive(Debug, Default, Args)]
pub struct Flags {
    /// TOML configuration file [env: CROSSCUT_CONFIG]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Address to bind [default: 0.0.0.0]
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Port to bind, 0 for any free port [default: 8080]
    #[arg(long, global = true)]
    pub port: Option<String>,
    /// Open connections before new ones get 503 [default: 10000]
    #[arg(long, global = true)]
    pub max_connections: Option<String>,
    /// Seconds before a plain HTTP handler gets 408 [default: 30]
    #[arg(long, global = true)]
    pub request_timeout_secs: Option<String>,
    /// true or false [default: true]
    #[arg(long, global = true)]
    pub enable_compression: Option<String>,
    /// Comma-separated allowed origins, `*` for any [default: *]
    #[arg(long, global = true)]
    pub cors_origins: Option<String>,
    /// HS256 secret, at least 32 bytes (prefer the environment: flags show in `ps`)
    #[arg(long, global = true)]
    pub jwt_secret: Option<String>,
    /// Average requests per second per client [default: 100]
    #[arg(long, global = true)]
    pub rate_limit_per_second: Option<String>,
    /// Burst size per client [default: 200]
    #[arg(long, global = true)]
    pub rate_limit_burst: Option<String>,
    /// Comma-separated CIDRs of trusted reverse proxies [default: none]
    #[arg(long, global = true)]
    pub trusted_proxies: Option<String>,
    /// text or json [default: text]
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    /// true or false [default: true]
    #[arg(long, global = true)]
    pub expose_connection_headers: Option<String>,
    /// Seconds in-flight requests get at shutdown [default: 30]
    #[arg(long, global = true)]
    pub shutdown_grace_secs: Option<String>,
    /// Largest request body in bytes [default: 1048576]
    #[arg(long, global = true)]
    pub max_body_bytes: Option<String>,
    /// Seconds between WebSocket pings [default: 30]
    #[arg(long, global = true)]
    pub ws_ping_interval_secs: Option<String>,
    /// Seconds without a pong before a WebSocket closes [default: 60]
    #[arg(long, global = true)]
    pub ws_pong_timeout_secs: Option<String>,
}

impl Flags {
    fn overrides(&self) -> Vec<(&'static str, &str)> {
        let pairs: [(&'static str, &Option<String>); 16] = [
            ("host", &self.host),
            ("port", &self.port),
            ("max_connections", &self.max_connections),
            ("request_timeout_secs", &self.request_timeout_secs),
            ("enable_compression", &self.enable_compression),
            ("cors_origins", &self.cors_origins),
            ("jwt_secret", &self.jwt_secret),
            ("rate_limit_per_second", &self.rate_limit_per_second),
            ("rate_limit_burst", &self.rate_limit_burst),
            ("trusted_proxies", &self.trusted_proxies),
            ("log_format", &self.log_format),
            ("expose_connection_headers", &self.expose_connection_headers),
            ("shutdown_grace_secs", &self.shutdown_grace_secs),
            ("max_body_bytes", &self.max_body_bytes),
            ("ws_ping_interval_secs", &self.ws_ping_interval_secs),
            ("ws_pong_timeout_secs", &self.ws_pong_timeout_secs),
        ];
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
            .collect()
    }
}

const ENV_PREFIX: &str = "CROSSCUT_";

impl Config {
    /// Loads the configuration from every source in precedence order and validates it.
    ///
    /// `env` is passed in rather than read here so tests need not touch the process environment.
    pub fn load(
        flags: &Flags,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();

        let defaults = Config::default();
        let Value::Object(mut table) = serde_json::to_value(&defaults)
            .map_err(|e| ConfigError::new("defaults", e.to_string()))?
        else {
            return Err(ConfigError::new("defaults", "not a table"));
        };
        // The string syntax of env and flags is typed by the default's JSON type; a field whose
        // default is null (the secret) is a string.
        let kinds = table.clone();

        let file = flags
            .config
            .clone()
            .or_else(|| env.get("CROSSCUT_CONFIG").map(PathBuf::from));
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new("config", format!("{}: {e}", path.display())))?;
            let parsed: toml::Table = toml::from_str(&text).map_err(|e| {
                ConfigError::new(
                    "config",
                    format!("{}: {}", path.display(), one_line(&e.to_string())),
                )
            })?;
            for (key, value) in parsed {
                let value = serde_json::to_value(value)
                    .map_err(|e| ConfigError::new(key.clone(), e.to_string()))?;
                table.insert(key, value);
            }
        }

        for (key, raw) in &env {
            if key == "CROSSCUT_CONFIG" {
                continue;
            }
            let field = key[ENV_PREFIX.len()..].to_ascii_lowercase();
            let value = typed(&kinds, &field, raw)
                .ok_or_else(|| ConfigError::new(key.clone(), "unknown configuration field"))?;
            table.insert(field, value);
        }

        for (field, raw) in flags.overrides() {
            let value = typed(&kinds, field, raw)
                .ok_or_else(|| ConfigError::new(field, "unknown configuration field"))?;
            table.insert(field.to_owned(), value);
        }

        Self::from_table(table)
    }

    fn from_table(table: Map<String, Value>) -> Result<Self, ConfigError> {
        let config: Config =
            serde_path_to_error::deserialize(Value::Object(table)).map_err(|e| {
                let field = e.path().to_string();
                let problem = one_line(&e.into_inner().to_string());
                // serde names an unknown field only in its message; pull it out so the line leads with it.
                match problem.strip_prefix("unknown field `") {
                    Some(rest) => {
                        let name = rest.split('`').next().unwrap_or("?");
                        ConfigError::new(name, "unknown configuration field")
                    }
                    None => ConfigError::new(field, problem),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule a type cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.host.parse::<IpAddr>().map_err(|_| {
            ConfigError::new("host", format!("`{}` is not an IP address", self.host))
        })?;
        if self.max_connections == 0 {
            return Err(ConfigError::new("max_connections", "must be at least 1"));
        }
        if self.request_timeout_secs == 0 {
            return Err(ConfigError::new(
                "request_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.rate_limit_per_second == 0 {
            return Err(ConfigError::new(
                "rate_limit_per_second",
                "must be at least 1",
            ));
        }
        if self.rate_limit_burst == 0 {
            return Err(ConfigError::new("rate_limit_burst", "must be at least 1"));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new("max_body_bytes", "must be at least 1"));
        }
        if self.ws_ping_interval_secs == 0 {
            return Err(ConfigError::new(
                "ws_ping_interval_secs",
                "must be at least 1",
            ));
        }
        if self.ws_pong_timeout_secs <= self.ws_ping_interval_secs {
            return Err(ConfigError::new(
                "ws_pong_timeout_secs",
                "must be longer than ws_ping_interval_secs",
            ));
        }
        if self.cors_origins.is_empty() {
            return Err(ConfigError::new(
                "cors_origins",
                "must list at least one origin (use \"*\" for any)",
            ));
        }
        for origin in &self.cors_origins {
            validate_origin(origin).map_err(|p| ConfigError::new("cors_origins", p))?;
        }
        for cidr in &self.trusted_proxies {
            parse_cidr(cidr).map_err(|p| ConfigError::new("trusted_proxies", p))?;
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < 32 {
                return Err(ConfigError::new(
                    "jwt_secret",
                    format!("must be at least 32 bytes, got {}", secret.len()),
                ));
            }
        }
        Ok(())
    }

    /// The trusted proxy networks, parsed.
    pub fn trusted_proxy_nets(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|c| parse_cidr(c).ok())
            .collect()
    }
}

/// A CIDR, or a bare address meaning a network of one.
fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not a CIDR such as 10.0.0.0/8"))
}

fn validate_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() {
        return Err("empty origin".to_owned());
    }
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("`{origin}` must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') || !rest.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "`{origin}` is not an origin (scheme://host[:port], no path)"
        ));
    }
    if http::HeaderValue::from_str(origin).is_err() {
        return Err(format!("`{origin}` is not a valid header value"));
    }
    Ok(())
}

/// Converts a string from the environment or a flag into the JSON type the field's default has,
/// or `None` for a field that does not exist. A value that does not parse is kept as a string so
/// deserialization reports the type error against the field's name.
fn typed(kinds: &Map<String, Value>, field: &str, raw: &str) -> Option<Value> {
    let kind = kinds.get(field)?;
    let raw = raw.trim();
    Some(match kind {
        Value::Bool(_) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
        Value::Number(_) => raw
            .parse::<u64>()
            .map(Value::from)
            .or_else(|_| raw.parse::<i64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Value::Array(_) => {
            if raw.is_empty() {
                Value::Array(Vec::new())
            } else {
                Value::Array(
                    raw.split(',')
                        .map(|s| Value::String(s.trim().to_owned()))
                        .collect(),
                )
            }
        }
        _ => Value::String(raw.to_owned()),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(flags: &Flags, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(
            flags,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = load(&Flags::default(), &[]).unwrap();
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.port, 8080);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.cors_origins, vec!["*"]);
        assert_eq!(c.rate_limit_burst, 200);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.max_body_bytes, 1_048_576);
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let dir = std::env::temp_dir().join(format!("crosscut-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "port = 7000\nmax_connections = 5\nlog_format = \"json\"\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(file),
            port: Some("9001".into()),
            ..Flags::default()
        };
        let c = load(
            &flags,
            &[
                ("CROSSCUT_PORT", "9000"),
                ("CROSSCUT_MAX_CONNECTIONS", "6"),
                (
                    "CROSSCUT_CORS_ORIGINS",
                    "https://a.example, https://b.example",
                ),
            ],
        )
        .unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.max_connections, 6);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(
            c.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("CROSSCUT_PORT", "70000", "port"),
            ("CROSSCUT_PORT", "abc", "port"),
            ("CROSSCUT_TRUSTED_PROXIES", "10.0.0.0/99", "trusted_proxies"),
            (
                "CROSSCUT_CORS_ORIGINS",
                "https://a.example,,",
                "cors_origins",
            ),
            ("CROSSCUT_JWT_SECRET", "short", "jwt_secret"),
            ("CROSSCUT_LOG_FORMAT", "xml", "log_format"),
            ("CROSSCUT_NOPE", "1", "CROSSCUT_NOPE"),
        ];
        for (k, v, field) in cases {
            let err = load(&Flags::default(), &[(k, v)]).unwrap_err();
            assert_eq!(err.field, *field, "{k}={v}: {err}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn unknown_field_in_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("crosscut-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "prot = 1\n").unwrap();
        let flags = Flags {
            config: Some(file),
            ..Flags::default()
        };
        let err = load(&flags, &[]).unwrap_err();
        assert_eq!(err.field, "prot");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Config {
            jwt_secret: Some("s".repeat(40)),
            ..Config::default()
        };
        assert!(!format!("{c:?}").contains("ssss"));
    }
}
