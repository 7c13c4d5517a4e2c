//! Who is connecting: JWT verification and where a token is found.
//!
//! A token is read from, in order: the Socket.IO handshake's `auth.token`,
//! the `Authorization: Bearer` header, the `__Host-accessToken` cookie, the
//! `accessToken` cookie, the `token` query parameter. It is verified with an
//! HS256 shared secret or an RS256/ES256 public key; its `aud` and `iss`
//! are checked only against what confab is told to expect ([`Expected`]):
//! identity providers put an audience in their tokens, and a token must not
//! be refused for naming one nobody asked about. The claims give the
//! [`Identity`]: `sub` (a string or a number), optional `name`, `username`,
//! `avatar`.

use std::time::{SystemTime, UNIX_EPOCH};

use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::first_non_empty;

/// Why a connection was refused. `Display` is the stable code a client sees
/// as its `connect_error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("AUTHENTICATION_REQUIRED")]
    Required,
    #[error("INVALID_TOKEN")]
    Invalid,
    #[error("TOKEN_EXPIRED")]
    Expired,
    /// Not a token problem: the user already has the most sockets allowed.
    #[error("TOO_MANY_CONNECTIONS")]
    TooManyConnections,
    /// A token presented on an open socket names another user.
    #[error("USER_MISMATCH")]
    OtherUser,
}

impl AuthError {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Required => "no token was provided",
            Self::Invalid => "the token is invalid",
            Self::Expired => "the token has expired",
            Self::TooManyConnections => "this user has too many open connections",
            Self::OtherUser => "the new token is for another user",
        }
    }
}

/// The authenticated user behind a socket or a REST call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub name: String,
    pub username: String,
    pub avatar: String,
    /// When the token expires (its `exp`, in ms), if it says.
    pub expires_at_ms: Option<i64>,
}

impl Identity {
    /// Whether the token has expired at `now_ms`, by the rule the handshake
    /// applies ([`LEEWAY_SECS`] after its `exp`).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms
            .is_some_and(|exp| now_ms > exp.saturating_add(LEEWAY_SECS as i64 * 1000))
    }

    /// The name to show: `name`, else `username`, else the id.
    pub fn display_name(&self) -> &str {
        first_non_empty(&[&self.name, &self.username, &self.user_id])
    }

    /// The login name: `username`, else `name`, else the id.
    pub fn login_name(&self) -> &str {
        first_non_empty(&[&self.username, &self.name, &self.user_id])
    }

    pub fn actor(&self) -> confab_proto::v1::Actor {
        confab_proto::v1::Actor {
            id: self.user_id.clone(),
            name: self.display_name().to_string(),
            avatar: self.avatar.clone(),
            username: self.username.clone(),
        }
    }
}

/// How long after its `exp` a token is still accepted (clock skew between
/// the issuer and confab), at the handshake and on an open socket alike.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Deserialize, Serialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<Value>,
    /// Some issuers put the user id here instead of `sub`.
    #[serde(default, rename = "userId", skip_serializing_if = "Option::is_none")]
    user_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    avatar: Option<String>,
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() && s.len() <= 128 => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The audiences and issuers a token must name, when confab is told
/// (`CONFAB_JWT_AUDIENCE`, `CONFAB_JWT_ISSUER`). An empty list checks
/// nothing: a token's `aud` (or `iss`) is then accepted whatever it says,
/// or absent. A non-empty list requires the claim, and one of its values
/// (a string, or any member of an array) must be in the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub audiences: Vec<String>,
    pub issuers: Vec<String>,
}

/// How tokens are checked.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// Checks `aud` and `iss` against `expected`, replacing what was
    /// expected before (by default neither is checked; see [`Expected`]).
    pub fn expecting(mut self, expected: &Expected) -> Self {
        let v = &mut self.validation;
        v.validate_aud = !expected.audiences.is_empty();
        v.aud = None;
        v.iss = None;
        v.required_spec_claims.clear();
        if !expected.audiences.is_empty() {
            v.set_audience(&expected.audiences);
            v.required_spec_claims.insert("aud".into());
        }
        if !expected.issuers.is_empty() {
            v.set_issuer(&expected.issuers);
            v.required_spec_claims.insert("iss".into());
        }
        self
    }

    /// From a PEM public key; `algorithm` is RS256 or ES256.
    pub fn from_public_key_pem(pem: &[u8], algorithm: Algorithm) -> anyhow::Result<Self> {
        let key = match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem)?,
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem)?,
            other => {
                anyhow::bail!("unsupported public-key algorithm {other:?}: use RS256 or ES256")
            }
        };
        Ok(Self::new(key, algorithm))
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        // `exp` is checked when present; tokens without one are accepted, as
        // many frontends' issuers omit it for long-lived sessions.
        validation.required_spec_claims.clear();
        validation.leeway = LEEWAY_SECS;
        Self { key, validation }.expecting(&Expected::default())
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            },
        )?;
        let c = data.claims;
        let user_id = c
            .sub
            .as_ref()
            .and_then(id_of)
            .or_else(|| c.user_id.as_ref().and_then(id_of))
            .ok_or(AuthError::Invalid)?;
        Ok(Identity {
            user_id,
            name: c.name.unwrap_or_default(),
            username: c.username.unwrap_or_default(),
            avatar: c.avatar.unwrap_or_default(),
            expires_at_ms: c
                .exp
                .and_then(|e| i64::try_from(e).ok())
                .map(|e| e.saturating_mul(1000)),
        })
    }
}

/// Mints HS256 tokens (the `confab token` command and tests).
pub fn mint_hs256(secret: &[u8], sub: &str, name: Option<&str>, ttl_secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        sub: Some(Value::String(sub.to_string())),
        user_id: None,
        exp: Some(now + ttl_secs),
        iat: Some(now),
        name: name.map(str::to_string),
        username: None,
        avatar: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap_or_default()
}

/// The cookies a token is read from, in order: the `__Host-` one an app's
/// backend sets over HTTPS first, then the plain one of development.
const ACCESS_TOKEN_COOKIES: [&str; 2] = ["__Host-accessToken", "accessToken"];

/// The first non-empty value of the cookie `name` in the request's
/// `Cookie` headers.
fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| match pair.trim().split_once('=') {
            Some((k, v)) if k == name && !v.trim().is_empty() => Some(v.trim().to_string()),
            _ => None,
        })
}

/// Finds the token of a Socket.IO handshake or an HTTP request.
pub fn find_token(auth: Option<&Value>, parts: &Parts) -> Option<String> {
    let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(t) = auth
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .and_then(non_empty)
    {
        return Some(t.trim_start_matches("Bearer ").to_string());
    }
    if let Some(h) = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .and_then(non_empty)
    {
        return Some(t);
    }
    if let Some(t) = ACCESS_TOKEN_COOKIES.iter().find_map(|c| cookie(parts, c)) {
        return Some(t);
    }
    parts.uri.query().and_then(|q| {
        q.split('&').find_map(|pair| match pair.split_once('=') {
            Some(("token", v)) => {
                non_empty(&percent_encoding::percent_decode_str(v).decode_utf8_lossy())
            }
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn token_sources_in_order() {
        let auth = serde_json::json!({"token": "a"});
        let p = parts(
            "/?token=d",
            &[
                ("authorization", "Bearer b"),
                ("cookie", "x=1; accessToken=c"),
            ],
        );
        assert_eq!(find_token(Some(&auth), &p).as_deref(), Some("a"));
        assert_eq!(find_token(None, &p).as_deref(), Some("b"));
        let p = parts("/?token=d", &[("cookie", "x=1; accessToken=c")]);
        assert_eq!(find_token(None, &p).as_deref(), Some("c"));
        // The `__Host-` cookie (an app's backend over HTTPS) before the
        // plain one, in whichever order and header they come.
        let p = parts("/", &[("cookie", "accessToken=c; __Host-accessToken=h")]);
        assert_eq!(find_token(None, &p).as_deref(), Some("h"));
        let p = parts(
            "/",
            &[
                ("cookie", "accessToken=c"),
                ("cookie", "__Host-accessToken=h"),
            ],
        );
        assert_eq!(find_token(None, &p).as_deref(), Some("h"));
        let p = parts("/?token=d", &[("cookie", "__Host-accessToken=h")]);
        assert_eq!(find_token(None, &p).as_deref(), Some("h"));
        // An empty one is no token: the next source counts.
        let p = parts("/", &[("cookie", "__Host-accessToken=; accessToken=c")]);
        assert_eq!(find_token(None, &p).as_deref(), Some("c"));
        // Only these names: `__Secure-` or look-alike cookies are not read.
        let p = parts(
            "/?token=d",
            &[("cookie", "__Secure-accessToken=s; xaccessToken=x")],
        );
        assert_eq!(find_token(None, &p).as_deref(), Some("d"));
        let p = parts("/?EIO=4&token=d%2Ee", &[]);
        assert_eq!(find_token(None, &p).as_deref(), Some("d.e"));
        assert_eq!(find_token(None, &parts("/", &[])), None);
    }

    fn key(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn verifies_rs256_and_es256_with_public_keys() {
        let claims = serde_json::json!({"sub": "7", "name": "Ada", "exp": 4_000_000_000u64});
        for (alg, private, public) in [
            (Algorithm::RS256, "rsa.pem", "rsa.pub"),
            (Algorithm::ES256, "ec.pem", "ec.pub"),
        ] {
            let signing = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(&key(private)).unwrap(),
                _ => EncodingKey::from_ec_pem(&key(private)).unwrap(),
            };
            let token = jsonwebtoken::encode(&Header::new(alg), &claims, &signing).unwrap();
            let v = Verifier::from_public_key_pem(&key(public), alg).unwrap();
            assert_eq!(v.verify(&token).unwrap().user_id, "7", "{alg:?}");
            // An HS256 token is refused by a public-key verifier.
            assert_eq!(
                v.verify(&mint_hs256(b"secret", "7", None, 60)),
                Err(AuthError::Invalid)
            );
        }
        assert!(Verifier::from_public_key_pem(&key("rsa.pub"), Algorithm::HS256).is_err());
    }

    #[test]
    fn verifies_signature_and_expiry() {
        let v = Verifier::hs256(b"secret");
        let t = mint_hs256(b"secret", "42", Some("Alice"), 60);
        let id = v.verify(&t).unwrap();
        assert_eq!((id.user_id.as_str(), id.display_name()), ("42", "Alice"));
        assert_eq!(
            v.verify(&mint_hs256(b"other", "42", None, 60)),
            Err(AuthError::Invalid)
        );
        assert_eq!(v.verify("garbage"), Err(AuthError::Invalid));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let expired = jsonwebtoken::encode(
            &Header::default(),
            &serde_json::json!({"sub": 7, "exp": now - 3600}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(v.verify(&expired), Err(AuthError::Expired));
    }

    /// An HS256 token signed with `secret` whose claims are `sub: "7"` and
    /// `extra`.
    fn signed(extra: serde_json::Value) -> String {
        let mut claims = serde_json::json!({"sub": "7", "exp": 4_000_000_000u64});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    }

    #[test]
    fn audience_and_issuer_are_accepted_when_nothing_is_expected() {
        let v = Verifier::hs256(b"secret");
        for claims in [
            serde_json::json!({}),
            serde_json::json!({"aud": "my-app"}),
            serde_json::json!({"aud": ["my-app", "https://idp.example/userinfo"]}),
            serde_json::json!({"aud": []}),
            serde_json::json!({"iss": "https://idp.example/"}),
            serde_json::json!({"aud": "my-app", "iss": "https://idp.example/"}),
        ] {
            assert_eq!(
                v.verify(&signed(claims.clone())).map(|i| i.user_id),
                Ok("7".into()),
                "{claims}"
            );
        }
        // Still signed and unexpired.
        let forged = jsonwebtoken::encode(
            &Header::default(),
            &serde_json::json!({"sub": "7", "aud": "my-app"}),
            &EncodingKey::from_secret(b"other"),
        )
        .unwrap();
        assert_eq!(v.verify(&forged), Err(AuthError::Invalid));
        let expired = signed(serde_json::json!({"aud": "my-app", "exp": 1}));
        assert_eq!(v.verify(&expired), Err(AuthError::Expired));
    }

    #[test]
    fn an_expected_audience_and_issuer_are_required_and_checked() {
        let expected = Expected {
            audiences: vec!["confab-api".into(), "confab-admin".into()],
            issuers: vec!["https://idp.example/".into()],
        };
        let v = Verifier::hs256(b"secret").expecting(&expected);
        let iss = "https://idp.example/";
        for (claims, ok) in [
            (serde_json::json!({"aud": "confab-api", "iss": iss}), true),
            (serde_json::json!({"aud": "confab-admin", "iss": iss}), true),
            (
                serde_json::json!({"aud": ["other", "confab-api"], "iss": iss}),
                true,
            ),
            (serde_json::json!({"aud": "other", "iss": iss}), false),
            (
                serde_json::json!({"aud": ["other", "more"], "iss": iss}),
                false,
            ),
            (serde_json::json!({"aud": [], "iss": iss}), false),
            (serde_json::json!({"iss": iss}), false),
            (serde_json::json!({"aud": "confab-api"}), false),
            (
                serde_json::json!({"aud": "confab-api", "iss": "https://evil.example/"}),
                false,
            ),
            (
                serde_json::json!({"aud": "confab-api", "iss": ["https://evil.example/"]}),
                false,
            ),
            (serde_json::json!({"aud": 7, "iss": iss}), false),
        ] {
            let want = if ok {
                Ok("7".to_string())
            } else {
                Err(AuthError::Invalid)
            };
            assert_eq!(
                v.verify(&signed(claims.clone())).map(|i| i.user_id),
                want,
                "{claims}"
            );
        }
        // Each setting alone checks only its claim.
        let aud_only = Verifier::hs256(b"secret").expecting(&Expected {
            audiences: vec!["confab-api".into()],
            issuers: Vec::new(),
        });
        assert!(
            aud_only
                .verify(&signed(
                    serde_json::json!({"aud": "confab-api", "iss": "anyone"})
                ))
                .is_ok()
        );
        assert!(
            aud_only
                .verify(&signed(serde_json::json!({"aud": "confab-api"})))
                .is_ok()
        );
        assert!(
            aud_only
                .verify(&signed(serde_json::json!({"aud": "other"})))
                .is_err()
        );
        let iss_only = Verifier::hs256(b"secret").expecting(&Expected {
            audiences: Vec::new(),
            issuers: vec![iss.into()],
        });
        assert!(
            iss_only
                .verify(&signed(serde_json::json!({"aud": "anything", "iss": iss})))
                .is_ok()
        );
        assert!(
            iss_only
                .verify(&signed(serde_json::json!({"aud": "anything"})))
                .is_err()
        );
        // Expecting nothing again undoes it.
        let reset = v.expecting(&Expected::default());
        assert!(
            reset
                .verify(&signed(serde_json::json!({"aud": "other"})))
                .is_ok()
        );
    }
}
