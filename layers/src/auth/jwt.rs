//! Keys, validation rules, signing: everything that touches a token's bytes.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderValue, WWW_AUTHENTICATE};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::Claims;
use crate::error::{ApiError, ErrorCode};

/// The shortest HS256 secret accepted: 32 bytes, the size of the HMAC-SHA256 output (RFC 7518 §3.2).
pub const MIN_SECRET_LEN: usize = 32;

/// The clock skew tolerated on `exp` and `nbf` unless [`JwtKeys::leeway`] says otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Why a [`JwtKeys`] could not be built or could not sign.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// An HS256 secret shorter than [`MIN_SECRET_LEN`] bytes.
    SecretTooShort {
        /// The length of the secret given, in bytes.
        len: usize,
    },
    /// A PEM key that could not be parsed.
    InvalidKey(String),
    /// [`JwtKeys::sign`] on keys that can only verify (a public key).
    CannotSign,
    /// The claims could not be encoded.
    Encoding(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretTooShort { len } => write!(
                f,
                "the JWT secret is {len} bytes long; at least {MIN_SECRET_LEN} are required"
            ),
            Self::InvalidKey(e) => write!(f, "invalid key: {e}"),
            Self::CannotSign => f.write_str("these keys can verify tokens but not sign them"),
            Self::Encoding(e) => write!(f, "cannot encode the token: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// The keys and rules that validate (and, for HS256, issue) tokens. Cheap to clone: one `Arc`.
///
/// One algorithm per instance: a token whose header names any other algorithm, `none` included, is
/// rejected before its signature is looked at. This is what stops the classic confusion attack of an
/// HS256 token "signed" with a server's RSA public key.
///
/// ```
/// use std::time::Duration;
/// use crosscut::auth::JwtKeys;
///
/// let keys = JwtKeys::hs256("an example secret of at least 32 bytes").unwrap();
/// let token = keys.issue("alice", ["read", "write"], Duration::from_secs(3600)).unwrap();
/// let claims = keys.verify(&token).unwrap();
/// assert_eq!(claims.sub, "alice");
/// assert!(claims.has_perm("write"));
///
/// assert!(JwtKeys::hs256("too short").is_err());
/// ```
#[derive(Clone)]
pub struct JwtKeys {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
}

impl fmt::Debug for JwtKeys {
    // Key material is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.inner.algorithm)
            .field("leeway_secs", &self.inner.validation.leeway)
            .field("can_sign", &self.inner.encoding.is_some())
            .finish()
    }
}

impl JwtKeys {
    fn from_parts(
        algorithm: Algorithm,
        decoding: DecodingKey,
        encoding: Option<EncodingKey>,
    ) -> Self {
        // `Validation::new` already requires `exp` and checks it; it allows only `algorithm`.
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = DEFAULT_LEEWAY.as_secs();
        // No audience is configured, so an `aud` claim is not checked (jsonwebtoken would otherwise
        // reject every token that carries one).
        validation.validate_aud = false;
        Self {
            inner: Arc::new(Inner {
                algorithm,
                decoding,
                encoding,
                validation,
            }),
        }
    }

    /// HS256 with a shared secret: verifies and signs.
    ///
    /// # Errors
    ///
    /// [`KeyError::SecretTooShort`] when the secret is under [`MIN_SECRET_LEN`] bytes.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort { len: secret.len() });
        }
        Ok(Self::from_parts(
            Algorithm::HS256,
            DecodingKey::from_secret(secret),
            Some(EncodingKey::from_secret(secret)),
        ))
    }

    /// RS256 with an RSA public key in PEM (`-----BEGIN PUBLIC KEY-----` or `RSA PUBLIC KEY`): verifies only.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidKey`] when the PEM cannot be parsed.
    pub fn rs256_pem(public_pem: &[u8]) -> Result<Self, KeyError> {
        let decoding = DecodingKey::from_rsa_pem(public_pem).map_err(invalid_key)?;
        Ok(Self::from_parts(Algorithm::RS256, decoding, None))
    }

    /// EdDSA (Ed25519) with a public key in PEM: verifies only.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidKey`] when the PEM cannot be parsed.
    pub fn ed25519_pem(public_pem: &[u8]) -> Result<Self, KeyError> {
        let decoding = DecodingKey::from_ed_pem(public_pem).map_err(invalid_key)?;
        Ok(Self::from_parts(Algorithm::EdDSA, decoding, None))
    }

    /// Adds the private key (PEM) so that RS256 or EdDSA keys can [`sign`](Self::sign) too.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidKey`] when the PEM cannot be parsed, or for HS256 keys (which sign with
    /// their secret already).
    pub fn with_private_pem(mut self, private_pem: &[u8]) -> Result<Self, KeyError> {
        let encoding = match self.inner.algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
            _ => {
                return Err(KeyError::InvalidKey(
                    "HS256 keys sign with their secret".into(),
                ))
            }
        }
        .map_err(invalid_key)?;
        Arc::make_mut(&mut self.inner).encoding = Some(encoding);
        Ok(self)
    }

    /// The clock skew tolerated on `exp` and `nbf` (default 30 s), rounded down to whole seconds.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        Arc::make_mut(&mut self.inner).validation.leeway = leeway.as_secs();
        self
    }

    /// The one algorithm these keys accept.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// Validates `token` (the part after `Bearer `) and returns its claims.
    ///
    /// # Errors
    ///
    /// 401 `INVALID_TOKEN` with `WWW-Authenticate: Bearer error="invalid_token"` for any token that is
    /// malformed, badly signed, of another algorithm, expired or not yet valid.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let inner = &*self.inner;
        match jsonwebtoken::decode::<Claims>(token, &inner.decoding, &inner.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => {
                let (kind, message) = describe(e.kind());
                // The kind only: the token itself never reaches the log.
                tracing::debug!(kind, "bearer token rejected");
                Err(invalid_token(message))
            }
        }
    }

    /// Signs `claims` with these keys' algorithm.
    ///
    /// # Errors
    ///
    /// [`KeyError::CannotSign`] for verify-only keys; [`KeyError::Encoding`] if encoding fails.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let key = self.inner.encoding.as_ref().ok_or(KeyError::CannotSign)?;
        jsonwebtoken::encode(&Header::new(self.inner.algorithm), claims, key)
            .map_err(|e| KeyError::Encoding(e.to_string()))
    }

    /// Signs a token for `sub` with `perms`, issued now and valid for `ttl`.
    ///
    /// # Errors
    ///
    /// As [`sign`](Self::sign).
    pub fn issue<I, P>(
        &self,
        sub: impl Into<String>,
        perms: I,
        ttl: Duration,
    ) -> Result<String, KeyError>
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        let now = unix_now();
        self.sign(&Claims {
            sub: sub.into(),
            perms: perms.into_iter().map(Into::into).collect(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
            nbf: None,
        })
    }
}

/// Seconds since the Unix epoch; 0 if the system clock is before it.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn invalid_key(e: jsonwebtoken::errors::Error) -> KeyError {
    KeyError::InvalidKey(e.to_string())
}

/// 401 `INVALID_TOKEN` with the RFC 6750 `invalid_token` challenge.
pub(crate) fn invalid_token(message: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidToken, message).with_header(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    )
}

/// A short kind for the debug log and the message the client sees. Neither carries token content.
fn describe(kind: &ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::ExpiredSignature => ("expired", "the bearer token has expired"),
        ErrorKind::ImmatureSignature => ("not_yet_valid", "the bearer token is not yet valid"),
        ErrorKind::InvalidSignature => ("bad_signature", "the bearer token is invalid"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            ("wrong_algorithm", "the bearer token is invalid")
        }
        ErrorKind::MissingRequiredClaim(_) => ("missing_claim", "the bearer token is invalid"),
        ErrorKind::Json(_) => ("bad_claims", "the bearer token is invalid"),
        _ => ("malformed", "the bearer token is invalid"),
    }
}
