//! The demo's JWT keys: HS256 from `jwt_secret`, or a random secret and a logged demo token when
//! none is configured, and the tokens the `token` subcommand prints.

use std::time::Duration;

use crosscut::auth::{JwtKeys, KeyError};
use rand::Rng;

use crate::Config;

/// Length of the secret generated when none is configured: 384 bits, well past HS256's 256.
pub const GENERATED_SECRET_LEN: usize = 48;

/// Lifetime of the demo token logged at start without a configured secret.
pub const DEMO_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The keys the server validates bearer tokens with.
///
/// With `jwt_secret` configured: HS256 with it. Without one: a random secret (logged as a warning,
/// since tokens then do not survive a restart) and a ready demo token for subject `demo` with
/// `read,write`, valid one hour, logged at INFO. That line is the only place a token is logged.
pub fn server_keys(config: &Config) -> JwtKeys {
    if let Some(secret) = &config.jwt_secret {
        match JwtKeys::hs256(secret) {
            Ok(keys) => return keys,
            // Config validation rejects such a secret before we get here; a `Config` built in
            // code skips it, so say why and fall back to a secret nobody knows (the safe side).
            Err(e) => tracing::error!("jwt_secret is not usable ({e}); using a random secret"),
        }
    } else {
        tracing::warn!(
            "no jwt_secret configured: using a random secret; tokens will not survive a restart"
        );
    }
    let keys = random_keys();
    match keys.issue("demo", ["read", "write"], DEMO_TOKEN_TTL) {
        Ok(token) => tracing::info!(
            "demo token (subject demo, permissions read,write, valid one hour): {token}"
        ),
        Err(e) => tracing::warn!("cannot sign the demo token: {e}"),
    }
    keys
}

/// HS256 keys from a fresh random secret of [`GENERATED_SECRET_LEN`] bytes (OS-seeded CSPRNG).
pub fn random_keys() -> JwtKeys {
    let mut secret = [0u8; GENERATED_SECRET_LEN];
    rand::rng().fill(&mut secret[..]);
    JwtKeys::hs256(secret).unwrap_or_else(|_| unreachable!("48 bytes is over the 32-byte minimum"))
}

/// Why the `token` subcommand could not print a token.
#[derive(Debug)]
pub enum TokenError {
    /// No `jwt_secret` is configured: a token for a random secret would be useless.
    NoSecret,
    /// The secret was refused or signing failed.
    Key(KeyError),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSecret => f.write_str(
                "token: no jwt_secret is configured (set CROSSCUT_JWT_SECRET, jwt_secret in the \
                 --config file, or --jwt-secret); a token for a random secret would be useless",
            ),
            Self::Key(e) => write!(f, "token: {e}"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Signs a token for `sub` with the comma-separated permissions `perms`, valid `ttl`, with the
/// configured secret.
///
/// # Errors
///
/// [`TokenError::NoSecret`] without a configured secret; [`TokenError::Key`] if it cannot sign.
pub fn issue_token(
    config: &Config,
    sub: &str,
    perms: &str,
    ttl: Duration,
) -> Result<String, TokenError> {
    let secret = config.jwt_secret.as_ref().ok_or(TokenError::NoSecret)?;
    let keys = JwtKeys::hs256(secret).map_err(TokenError::Key)?;
    let perms = perms.split(',').map(str::trim).filter(|p| !p.is_empty());
    keys.issue(sub, perms, ttl).map_err(TokenError::Key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_verifies_with_the_configured_secret() {
        let config = Config {
            jwt_secret: Some("s".repeat(40)),
            ..Config::default()
        };
        let token = issue_token(&config, "ann", "read, write,,", Duration::from_secs(60)).unwrap();
        let claims = JwtKeys::hs256("s".repeat(40))
            .unwrap()
            .verify(&token)
            .unwrap();
        assert_eq!(claims.sub, "ann");
        assert_eq!(claims.perms, ["read", "write"]);
    }

    #[test]
    fn no_secret_no_token() {
        let err = issue_token(&Config::default(), "ann", "read", Duration::from_secs(60));
        assert!(matches!(err, Err(TokenError::NoSecret)));
    }

    #[test]
    fn random_keys_differ() {
        let token = random_keys()
            .issue("x", ["read"], Duration::from_secs(60))
            .unwrap();
        assert!(random_keys().verify(&token).is_err());
    }
}
