//! Bearer tokens as the Docker token authentication specification describes them: JWTs whose
//! `access` claim lists what the bearer may do. The built-in service signs them (ES256, with a
//! key generated on first start when absent); with an existing issuer's keys instead (a JWKS or
//! PEM certificates), the registry only verifies them.
//!
//! Verification fixes the algorithm by configuration (never from the token, so never `none`),
//! and checks the signature, `iss`, `aud` (the service), `exp` and `nbf` with a bounded clock
//! skew. Refresh tokens (`access_type=offline`) carry no access and are refused as access
//! tokens.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::Token;

/// One entry of the `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `repository` (or `registry` for the catalog).
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name (`catalog` for the registry).
    pub name: String,
    /// `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

/// The claims of our tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user, or empty for an anonymous token.
    #[serde(default)]
    pub sub: String,
    /// Audience: the service.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before.
    #[serde(default)]
    pub nbf: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// Unique id.
    #[serde(default)]
    pub jti: String,
    /// What the bearer may do.
    #[serde(default)]
    pub access: Vec<Grant>,
    /// A refresh token (only good for getting access tokens).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh: bool,
}

/// A token handed out.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// Seconds it is good for.
    pub expires_in: u64,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
}

/// Signing (built-in service) and verification keys, and what tokens must say.
pub struct Tokens {
    config: Token,
    algorithm: Algorithm,
    signer: Option<(EncodingKey, String)>,
    /// A secret derived from the built-in signing key (replicas sharing the key file share it).
    derived: Option<[u8; 32]>,
    keys: Vec<(Option<String>, DecodingKey)>,
    /// Tokens verified lately, by SHA-256 of the token: a client sends the same token with
    /// every request, and a signature check costs tens of microseconds.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], (Claims, u64)>>,
}

/// How long a verified token is remembered (never past its `exp`).
const VERIFIED_TTL: u64 = 60;
/// Most tokens remembered.
const VERIFIED_ENTRIES: usize = 10_000;

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.config.issuer)
            .field("service", &self.config.service)
            .field("built_in", &self.signer.is_some())
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64"))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// The PEM blocks of a file, each with its markers.
fn pem_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let Some(end_marker) = rest[start..].find("-----END ") else {
            break;
        };
        let after = start + end_marker;
        let Some(close) = rest[after + 9..].find("-----") else {
            break;
        };
        let end = after + 9 + close + 5;
        blocks.push(&rest[start..end]);
        rest = &rest[end..];
    }
    blocks
}

/// Reads the built-in signing key, generating one (mode 0600) when the file is absent.
fn signing_key(path: &Path) -> Result<(EncodingKey, DecodingKey, String, [u8; 32]), String> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    if !path.exists() {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "generate the token signing key".to_owned())?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        file.write_all(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "generated the token signing key");
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let block = pem_blocks(&text)
        .into_iter()
        .find(|b| b.starts_with("-----BEGIN PRIVATE KEY-----"))
        .ok_or_else(|| format!("{}: no PKCS#8 PRIVATE KEY block", path.display()))?;
    let der = pem_der(block).ok_or_else(|| format!("{}: the key is not valid PEM", path.display()))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .map_err(|_| format!("{}: not a P-256 (ES256) private key", path.display()))?;
    let public = pair.public_key().as_ref().to_vec();
    let kid = hex_prefix(&public);
    let encoding = EncodingKey::from_ec_pem(block.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut derived = Sha256::new();
    derived.update(b"strata derived secret\0");
    derived.update(&der);
    Ok((
        encoding,
        DecodingKey::from_ec_der(&public),
        kid,
        derived.finalize().into(),
    ))
}

fn pem_der(block: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = block.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()
}

fn hex_prefix(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Tokens {
    /// Loads (or, for the built-in service, creates) the keys.
    pub fn open(config: &Token) -> Result<Self, String> {
        let algorithm = match config.algorithm.as_str() {
            "ES256" => Algorithm::ES256,
            "RS256" => Algorithm::RS256,
            other => return Err(format!("[auth.token] algorithm {other:?}: expected ES256 or RS256")),
        };
        let mut tokens = Tokens {
            config: config.clone(),
            algorithm,
            signer: None,
            derived: None,
            keys: Vec::new(),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        if let Some(path) = &config.jwks {
            let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_str(&text).map_err(|e| format!("{}: not a JWKS: {e}", path.display()))?;
            for jwk in &set.keys {
                if matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)) {
                    continue; // Shared secrets are not accepted.
                }
                let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{}: {e}", path.display()))?;
                tokens.keys.push((jwk.common.key_id.clone(), key));
            }
        }
        if let Some(path) = &config.certificates {
            let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
            for block in pem_blocks(&text) {
                let key = match algorithm {
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(block.as_bytes()),
                    _ => DecodingKey::from_ec_pem(block.as_bytes()),
                }
                .map_err(|e| format!("{}: {e}", path.display()))?;
                tokens.keys.push((None, key));
            }
        }
        if tokens.keys.is_empty() {
            if algorithm != Algorithm::ES256 {
                return Err("the built-in token service signs with ES256".into());
            }
            let path = config.key.as_deref().ok_or(
                "[auth.token] needs `key` (the built-in service) or `jwks`/`certificates` (an existing issuer)",
            )?;
            let (encoding, decoding, kid, derived) = signing_key(path)?;
            tokens.keys.push((Some(kid.clone()), decoding));
            tokens.signer = Some((encoding, kid));
            tokens.derived = Some(derived);
        }
        Ok(tokens)
    }

    /// A secret every process with the same signing key derives alike (none without the
    /// built-in service): keys for what replicas must sign and check for each other.
    pub fn derived_secret(&self) -> Option<[u8; 32]> {
        self.derived
    }

    /// Whether this registry issues tokens (`/token`), rather than an existing issuer.
    pub fn issues(&self) -> bool {
        self.signer.is_some()
    }

    /// The service tokens are for.
    pub fn service(&self) -> &str {
        &self.config.service
    }

    /// Where clients get tokens: the configured realm, or `/token` on the host they addressed.
    pub fn realm(&self, scheme: &str, host: Option<&str>) -> String {
        match &self.config.realm {
            Some(realm) => realm.clone(),
            None => format!("{scheme}://{}/token", host.unwrap_or("localhost")),
        }
    }

    fn sign(&self, claims: &Claims) -> String {
        let (key, kid) = self.signer.as_ref().expect("only the built-in service signs");
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, key).expect("signing with a loaded key")
    }

    fn claims(&self, subject: &str, ttl: u64) -> Claims {
        let now = now();
        Claims {
            iss: self.config.issuer.clone(),
            sub: subject.to_owned(),
            aud: self.config.service.clone(),
            exp: now + ttl,
            nbf: now.saturating_sub(1),
            iat: now,
            jti: format!("{:032x}", rand::random::<u128>()),
            access: Vec::new(),
            refresh: false,
        }
    }

    /// An access token for `subject` (empty: anonymous) with `access`.
    pub fn issue(&self, subject: &str, access: Vec<Grant>) -> Issued {
        let mut claims = self.claims(subject, self.config.ttl.as_secs());
        claims.access = access;
        Issued {
            token: self.sign(&claims),
            expires_in: self.config.ttl.as_secs(),
            issued_at: humantime_rfc3339(claims.iat),
        }
    }

    /// A refresh token for `subject`.
    pub fn issue_refresh(&self, subject: &str) -> String {
        let mut claims = self.claims(subject, self.config.refresh_ttl.as_secs());
        claims.refresh = true;
        self.sign(&claims)
    }

    fn decode(&self, token: &str) -> Result<Claims, String> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.service]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        if header.alg != self.algorithm {
            return Err(format!("token algorithm {:?} is not the configured one", header.alg));
        }
        let candidates = self
            .keys
            .iter()
            .filter(|(kid, _)| header.kid.is_none() || kid.is_none() || kid == &header.kid);
        let mut last = "no key matches the token's kid".to_owned();
        for (_, key) in candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// The claims of a valid access token.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = now();
        if let Some((claims, until)) = self.verified.lock().expect("token cache").get(&key)
            && now < *until
        {
            return Ok(claims.clone());
        }
        let claims = self.decode(token)?;
        if claims.refresh {
            return Err("a refresh token is not an access token".into());
        }
        let until = claims.exp.min(now + VERIFIED_TTL);
        let mut cache = self.verified.lock().expect("token cache");
        if cache.len() >= VERIFIED_ENTRIES {
            cache.retain(|_, (_, until)| now < *until);
            if cache.len() >= VERIFIED_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (claims.clone(), until));
        Ok(claims)
    }

    /// The subject of a valid refresh token.
    pub fn verify_refresh(&self, token: &str) -> Result<String, String> {
        let claims = self.decode(token)?;
        if !claims.refresh || claims.sub.is_empty() {
            return Err("not a refresh token".into());
        }
        Ok(claims.sub)
    }
}

fn humantime_rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}
