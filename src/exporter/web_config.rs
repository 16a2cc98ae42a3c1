//! `--web.config.file`: prometheus/exporter-toolkit's web configuration (the file node_exporter,
//! Prometheus and most exporters take), read strictly — an unknown key is an error, as the
//! toolkit's `yaml.UnmarshalStrict` makes it — and checked whole before the server starts: the
//! certificate and key load and match, the CA loads, every password hash is bcrypt, every
//! header is one the toolkit allows. A file that fails any check is one `WebConfigError`, never
//! a server that starts half-configured.
//!
//! The file's shape is serde's to check: the keys are structs that deny unknown fields, and the
//! toolkit's names (`client_auth_type`, `min_version`/`max_version`, `curve_preferences`, the
//! headers and their fixed values) are enums spelt as the toolkit spells them, so a wrong one
//! is a YAML error with its line and column; what is left here is what serde cannot say (two
//! keys that exclude each other, a value rustls has not).
//!
//! What the toolkit reads and what happens to it here:
//! - `tls_server_config`: served with rustls (ring). `cert_file`/`key_file` or inline
//!   `cert`/`key`; `client_auth_type` with the toolkit's five values (and its old alias
//!   `RequireClientCert`); `client_ca_file` or inline `client_ca`; `min_version`/`max_version`
//!   TLS12 or TLS13 (rustls has no TLS 1.0/1.1: asking for them is an error); `cipher_suites`
//!   by Go's names, TLS 1.2 only, as in Go; `curve_preferences` (CurveP256, CurveP384, X25519;
//!   CurveP521 is not in ring: an error); `prefer_server_cipher_suites`; `client_allowed_sans`
//!   for DNS names and IP addresses.
//! - `http_server_config`: `headers` (the toolkit's five, with its allowed values), `http2`
//!   accepted and ignored (this server speaks HTTP/1.1 only; Prometheus falls back to it).
//! - `basic_auth_users` (user → bcrypt hash) and `basic_auth_excluded_paths` (the toolkit's
//!   docs; `auth_excluded_paths` in some releases).
//! - `rate_limit`: an error; scrapes are serialised here already.
//!
//! Relative paths are relative to the file's directory, as the toolkit's `SetDirectory`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DistinguishedName, RootCertStore};
use serde::Deserialize;

use super::auth::{BasicAuth, Users};
use crate::error::{Error, Place, WebConfigError};

type Result<T, E = WebConfigError> = std::result::Result<T, E>;

/// The file as written: every key the toolkit knows, nothing else.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(alias = "auth_excluded_paths")]
    basic_auth_excluded_paths: Option<Vec<String>>,
    rate_limit: Option<yaml_serde::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<ClientAuth>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<Curve>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<Headers>,
}

/// The headers the toolkit lets a file add (its `extraHTTPHeaders`), two with fixed values.
/// Others, such as Authorization or Content-Type, it refuses: so do we.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Headers {
    #[serde(rename = "Strict-Transport-Security")]
    strict_transport_security: Option<String>,
    #[serde(rename = "X-Content-Type-Options")]
    x_content_type_options: Option<ContentTypeOptions>,
    #[serde(rename = "X-Frame-Options")]
    x_frame_options: Option<FrameOptions>,
    #[serde(rename = "X-XSS-Protection")]
    x_xss_protection: Option<String>,
    #[serde(rename = "Content-Security-Policy")]
    content_security_policy: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum ContentTypeOptions {
    #[serde(rename = "nosniff")]
    NoSniff,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum FrameOptions {
    #[serde(rename = "deny")]
    Deny,
    #[serde(rename = "sameorigin")]
    SameOrigin,
}

/// The toolkit's `client_auth_type` values (Go's `tls.ClientAuthType`), spelt as it parses
/// them: blank is NoClientCert, and RequireClientCert its old name for RequireAnyClientCert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub(crate) enum ClientAuth {
    #[default]
    #[serde(alias = "")]
    NoClientCert,
    RequestClientCert,
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn name(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::RequestClientCert => "RequestClientCert",
            ClientAuth::RequireAnyClientCert => "RequireAnyClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    fn requires(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// The toolkit's `min_version`/`max_version` names (its `tlsVersions`); rustls has only the
/// last two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
enum TlsVersion {
    #[serde(rename = "TLS10")]
    Tls10,
    #[serde(rename = "TLS11")]
    Tls11,
    #[serde(rename = "TLS12")]
    Tls12,
    #[serde(rename = "TLS13")]
    Tls13,
}

impl TlsVersion {
    fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLS10",
            TlsVersion::Tls11 => "TLS11",
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

/// The toolkit's `curve_preferences` names (its `curves`, Go's `tls.CurveID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Curve {
    CurveP256,
    CurveP384,
    CurveP521,
    X25519,
}

/// Where the server's certificate and key come from: files are re-read when they change.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Inline { cert: String, key: String },
}

/// Everything but the certificate and key, which `TlsSettings::build` loads each time.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub source: Source,
    client_auth: ClientAuth,
    /// The client CA's certificates (DER), loaded once.
    client_ca: Vec<CertificateDer<'static>>,
    allowed_sans: Vec<rustls::pki_types::ServerName<'static>>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    provider: Arc<CryptoProvider>,
    prefer_server: bool,
}

/// The whole configuration, checked.
pub(crate) struct WebConfig {
    /// The file it was read from, which names it in the errors of a later load (`load` sets
    /// it; empty for text given to `parse`).
    pub path: PathBuf,
    pub tls: Option<TlsSettings>,
    pub auth: Option<BasicAuth>,
    /// Extra response headers from `http_server_config.headers`, in the toolkit's spelling.
    pub headers: Vec<(&'static str, String)>,
}

/// Reads and checks `path`: `Error::WebConfig` with the file's path and why.
pub(crate) fn load(path: &Path) -> crate::error::Result<WebConfig> {
    let failed = |reason| Error::web_config(path, reason);
    let text = std::fs::read_to_string(path).map_err(|e| failed(WebConfigError::Read(e)))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut config = parse(&text, dir).map_err(failed)?;
    config.path = path.to_path_buf();
    Ok(config)
}

/// `load` on text, with relative paths taken from `dir`.
pub(crate) fn parse(text: &str, dir: &Path) -> Result<WebConfig> {
    // An empty file is a valid, empty configuration (plain HTTP, no auth), as in the toolkit.
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        yaml_serde::from_str(text)?
    };
    if file.rate_limit.is_some() {
        return Err(WebConfigError::NotSupported {
            key: "rate_limit",
            why: "backlogctl exporter serialises scrapes already",
        });
    }
    let headers = headers(file.http_server_config.and_then(|h| {
        // http2: accepted and ignored; this server speaks HTTP/1.1 (documented).
        let _ = h.http2;
        h.headers
    }))?;
    let auth = match file.basic_auth_users {
        Some(users) if !users.is_empty() => Some(BasicAuth::new(
            Users::new(users)?,
            file.basic_auth_excluded_paths.unwrap_or_default(),
        )),
        _ => None,
    };
    let tls = match file.tls_server_config {
        Some(t) => tls(t, dir)?,
        None => None,
    };
    if let Some(t) = &tls {
        // Load once now: a missing, unreadable or mismatched certificate fails the start.
        t.build()?;
    }
    Ok(WebConfig {
        path: PathBuf::new(),
        tls,
        auth,
        headers,
    })
}

/// The headers to add, in the toolkit's spelling and in name order. Blank values are unset,
/// as the toolkit documents; the fixed ones were checked by serde.
fn headers(h: Option<Headers>) -> Result<Vec<(&'static str, String)>> {
    let h = h.unwrap_or_default();
    let fixed = |v: Option<&'static str>| v.map(str::to_string);
    let all = [
        ("Content-Security-Policy", h.content_security_policy),
        ("Strict-Transport-Security", h.strict_transport_security),
        (
            "X-Content-Type-Options",
            fixed(
                h.x_content_type_options
                    .map(|ContentTypeOptions::NoSniff| "nosniff"),
            ),
        ),
        (
            "X-Frame-Options",
            fixed(h.x_frame_options.map(|o| match o {
                FrameOptions::Deny => "deny",
                FrameOptions::SameOrigin => "sameorigin",
            })),
        ),
        ("X-XSS-Protection", h.x_xss_protection),
    ];
    let mut out = Vec::new();
    for (name, value) in all {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(WebConfigError::HeaderLineBreak { name });
        }
        out.push((name, value));
    }
    Ok(out)
}

fn tls(t: TlsFile, dir: &Path) -> Result<Option<TlsSettings>> {
    let enabled = t.cert.is_some()
        || t.key.is_some()
        || t.cert_file.is_some()
        || t.key_file.is_some()
        || t.client_auth_type.is_some()
        || t.client_ca_file.is_some()
        || t.client_ca.is_some();
    if !enabled {
        // As the toolkit: no certificate, key or client auth means plain HTTP.
        return Ok(None);
    }
    let source = source(t.cert, t.cert_file, t.key, t.key_file, dir)?;
    let client_auth = t.client_auth_type.unwrap_or_default();
    let client_ca = client_ca(t.client_ca, t.client_ca_file, dir)?;
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(WebConfigError::CaWithoutClientAuth);
    }
    if client_auth.verifies() && client_ca.is_none() {
        return Err(WebConfigError::NoClientCa {
            client_auth: client_auth.name(),
        });
    }
    let allowed_sans = allowed_sans(t.client_allowed_sans.unwrap_or_default(), client_auth)?;
    let versions = versions(t.min_version, t.max_version)?;
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.filter(|n| !n.is_empty()) {
        provider.cipher_suites = suites(&provider, &names)?;
    }
    if let Some(curves_given) = t.curve_preferences.filter(|n| !n.is_empty()) {
        provider.kx_groups = curves(&provider, &curves_given)?;
    }
    Ok(Some(TlsSettings {
        source,
        client_auth,
        client_ca: client_ca.unwrap_or_default(),
        allowed_sans,
        versions,
        provider: Arc::new(provider),
        prefer_server: t.prefer_server_cipher_suites.unwrap_or(true),
    }))
}

/// A path of the file, relative to the file's directory unless absolute (`SetDirectory`).
fn under(dir: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { dir.join(p) }
}

/// The server's certificate and key: both inline or both files.
fn source(
    cert: Option<String>,
    cert_file: Option<PathBuf>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    dir: &Path,
) -> Result<Source> {
    use WebConfigError::{BothSet, Missing, Mixed};
    match (cert, cert_file, key, key_file) {
        (Some(_), Some(_), _, _) => Err(BothSet {
            inline: "cert",
            file: "cert_file",
        }),
        (_, _, Some(_), Some(_)) => Err(BothSet {
            inline: "key",
            file: "key_file",
        }),
        (None, None, _, _) => Err(Missing { key: "cert_file" }),
        (_, _, None, None) => Err(Missing { key: "key_file" }),
        (Some(cert), None, Some(key), None) => Ok(Source::Inline { cert, key }),
        (None, Some(cert), None, Some(key)) => Ok(Source::Files {
            cert: under(dir, cert),
            key: under(dir, key),
        }),
        _ => Err(Mixed),
    }
}

/// `key` of the file read as bytes, or why not.
fn read(key: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| WebConfigError::ReadFile {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// The client CA's certificates, inline or from a file; None when neither is given.
fn client_ca(
    pem: Option<String>,
    file: Option<PathBuf>,
    dir: &Path,
) -> Result<Option<Vec<CertificateDer<'static>>>> {
    match (pem, file) {
        (Some(_), Some(_)) => Err(WebConfigError::BothSet {
            inline: "client_ca",
            file: "client_ca_file",
        }),
        (Some(pem), None) => Ok(Some(certs(
            pem.as_bytes(),
            Place {
                key: "client_ca",
                file: None,
            },
        )?)),
        (None, Some(file)) => {
            let file = under(dir, file);
            let pem = read("client_ca_file", &file)?;
            let place = Place {
                key: "client_ca_file",
                file: Some(file),
            };
            Ok(Some(certs(&pem, place)?))
        }
        (None, None) => Ok(None),
    }
}

/// `client_allowed_sans` as server names; they need a client certificate to check.
fn allowed_sans(
    sans: Vec<String>,
    client_auth: ClientAuth,
) -> Result<Vec<rustls::pki_types::ServerName<'static>>> {
    if !sans.is_empty() && !client_auth.requires() {
        return Err(WebConfigError::SansWithoutCert);
    }
    sans.into_iter()
        .map(|san| {
            rustls::pki_types::ServerName::try_from(san.clone())
                .map_err(|_| WebConfigError::BadSan { san })
        })
        .collect()
}

/// The protocol versions from `min_version` to `max_version` (TLS12 and TLS13 by default).
fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let min = spoken(min.unwrap_or(TlsVersion::Tls12), "min_version")?;
    let max = spoken(max.unwrap_or(TlsVersion::Tls13), "max_version")?;
    if min > max {
        return Err(WebConfigError::VersionOrder {
            min: min.name(),
            max: max.name(),
        });
    }
    let mut versions = Vec::new();
    if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

/// `v` when rustls speaks it: TLS10 and TLS11 exist in the toolkit but not in rustls.
fn spoken(v: TlsVersion, key: &'static str) -> Result<TlsVersion> {
    match v {
        TlsVersion::Tls10 | TlsVersion::Tls11 => Err(WebConfigError::Unsupported {
            key,
            value: v.name().to_string(),
            why: "rustls speaks TLS 1.2 and 1.3 only",
            instead: "TLS12".to_string(),
        }),
        TlsVersion::Tls12 | TlsVersion::Tls13 => Ok(v),
    }
}

/// TLS 1.3 suites are always kept (Go ignores cipher_suites for TLS 1.3); TLS 1.2 ones are
/// those listed, by Go's names, in the file's order.
fn suites(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<rustls::SupportedCipherSuite>> {
    let mut out: Vec<_> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_some())
        .copied()
        .collect();
    for name in names {
        // Go also accepts the ChaCha20 names without their _SHA256.
        let found = provider.cipher_suites.iter().find(|s| {
            let ours = s.suite().as_str().unwrap_or("");
            s.tls13().is_none() && (ours == name || ours.strip_suffix("_SHA256") == Some(name))
        });
        match found {
            Some(s) => out.push(*s),
            None => {
                let known: Vec<&str> = provider
                    .cipher_suites
                    .iter()
                    .filter(|s| s.tls13().is_none())
                    .filter_map(|s| s.suite().as_str())
                    .collect();
                return Err(WebConfigError::Unsupported {
                    key: "cipher_suites",
                    value: name.clone(),
                    why: "not a TLS 1.2 suite of this build; TLS 1.3 suites are always on",
                    instead: format!("one of {}", known.join(", ")),
                });
            }
        }
    }
    Ok(out)
}

fn curves(
    provider: &CryptoProvider,
    curves: &[Curve],
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>> {
    let unsupported = |curve: Curve, why| WebConfigError::Unsupported {
        key: "curve_preferences",
        value: format!("{curve:?}"),
        why,
        instead: "CurveP256, CurveP384 or X25519".to_string(),
    };
    curves
        .iter()
        .map(|&curve| {
            let group = match curve {
                Curve::CurveP256 => rustls::NamedGroup::secp256r1,
                Curve::CurveP384 => rustls::NamedGroup::secp384r1,
                Curve::X25519 => rustls::NamedGroup::X25519,
                Curve::CurveP521 => return Err(unsupported(curve, "ring has no P-521")),
            };
            provider
                .kx_groups
                .iter()
                .find(|g| g.name() == group)
                .copied()
                .ok_or_else(|| unsupported(curve, "not in this build's TLS provider"))
        })
        .collect()
}

fn certs(pem: &[u8], place: Place) -> Result<Vec<CertificateDer<'static>>> {
    let certs = match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) => certs,
        Err(source) => return Err(WebConfigError::Pem { place, source }),
    };
    if certs.is_empty() {
        return Err(WebConfigError::NoCertificate { place });
    }
    Ok(certs)
}

impl TlsSettings {
    /// A server configuration with the certificate and key as they are now (read again from
    /// their files, when they are files).
    pub(crate) fn build(&self) -> Result<Arc<ServerConfig>> {
        let (cert_pem, key_pem, cert_at, key_at) = match &self.source {
            Source::Files { cert, key } => (
                read("cert_file", cert)?,
                read("key_file", key)?,
                Place {
                    key: "cert_file",
                    file: Some(cert.clone()),
                },
                Place {
                    key: "key_file",
                    file: Some(key.clone()),
                },
            ),
            Source::Inline { cert, key } => (
                cert.clone().into_bytes(),
                key.clone().into_bytes(),
                Place {
                    key: "cert",
                    file: None,
                },
                Place {
                    key: "key",
                    file: None,
                },
            ),
        };
        let chain = certs(&cert_pem, cert_at.clone())?;
        let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(key) => key,
            Err(source) => {
                return Err(WebConfigError::Key {
                    place: key_at,
                    source,
                });
            }
        };
        let verifier = self.verifier()?;
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|source| WebConfigError::Tls {
                what: "the protocol versions",
                source,
            })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|source| WebConfigError::KeyPair {
                cert: cert_at,
                key: key_at,
                source: Box::new(source),
            })?;
        config.ignore_client_order = self.prefer_server;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The files to watch for a change; none for an inline certificate.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        match &self.source {
            Source::Files { cert, key } => vec![cert.clone(), key.clone()],
            Source::Inline { .. } => Vec::new(),
        }
    }

    fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>> {
        let inner: Arc<dyn ClientCertVerifier> = match self.client_auth {
            ClientAuth::NoClientCert => return Ok(WebPkiClientVerifier::no_client_auth()),
            ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => Arc::new(AnyCert {
                mandatory: self.client_auth.requires(),
                provider: self.provider.clone(),
            }),
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
                let mut roots = RootCertStore::empty();
                for c in &self.client_ca {
                    roots.add(c.clone()).map_err(|source| WebConfigError::Tls {
                        what: "a client CA certificate is unusable",
                        source,
                    })?;
                }
                let builder = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                );
                let builder = if self.client_auth.requires() {
                    builder
                } else {
                    builder.allow_unauthenticated()
                };
                builder.build().map_err(WebConfigError::Verifier)?
            }
        };
        if self.allowed_sans.is_empty() {
            Ok(inner)
        } else {
            Ok(Arc::new(AllowedSans {
                inner,
                sans: self.allowed_sans.clone(),
            }))
        }
    }
}

/// RequestClientCert and RequireAnyClientCert: any certificate, as Go accepts it (the
/// handshake still proves the client holds its key).
#[derive(Debug)]
struct AnyCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// client_allowed_sans: the client's certificate must name one of them (DNS name or IP
/// address), checked after the inner verifier accepted it.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<rustls::pki_types::ServerName<'static>>,
}

impl ClientCertVerifier for AllowedSans {
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::General("unparsable client certificate".into()))?;
        if self
            .sans
            .iter()
            .any(|san| cert.verify_is_valid_for_subject_name(san).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::General(
                "the client certificate names none of client_allowed_sans".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze";

    fn err(yaml: &str) -> WebConfigError {
        match parse(yaml, Path::new("/nonexistent-dir")) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => e,
        }
    }

    #[test]
    fn an_empty_file_or_auth_alone_serves_plain_http() {
        let c = parse("", Path::new(".")).unwrap();
        assert!(c.tls.is_none() && c.auth.is_none() && c.headers.is_empty());
        let c = parse(
            &format!(
                "basic_auth_users:\n  alice: {HASH}\nbasic_auth_excluded_paths: [/healthz]\n\
                 http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    \
                 Content-Security-Policy: \"\"\n"
            ),
            Path::new("."),
        )
        .unwrap();
        assert!(c.tls.is_none() && c.auth.is_some());
        assert_eq!(c.headers, vec![("X-Frame-Options", "deny".to_string())]);
    }

    #[test]
    fn every_bad_file_is_one_line_that_names_the_problem() {
        let cases = [
            ("tls_server_config:\n  cert_file: \"open\n", "end of stream"),
            (
                "tls_server_confg:\n  cert_file: a\n",
                "unknown field `tls_server_confg`",
            ),
            (
                "tls_server_config:\n  cert_fil: a\n",
                "unknown field `cert_fil`",
            ),
            (
                "http_server_config:\n  header: {}\n",
                "unknown field `header`",
            ),
            (
                "basic_auth_users:\n  alice: secret\n",
                "\"alice\" is not a bcrypt hash",
            ),
            (
                "http_server_config:\n  headers:\n    Authorization: x\n",
                "http_server_config.headers: unknown field `Authorization`",
            ),
            (
                "http_server_config:\n  headers:\n    Content-Type: x\n",
                "unknown field `Content-Type`, expected one of `Strict-Transport-Security`",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "X-Frame-Options: unknown variant `allow`, expected `deny` or `sameorigin` at line 3",
            ),
            ("tls_server_config:\n  key_file: k\n", "missing cert_file"),
            ("tls_server_config:\n  cert_file: c\n", "missing key_file"),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Sometimes\n",
                "client_auth_type: unknown variant `Sometimes`, expected one of",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  \
                 client_auth_type: RequireAndVerifyClientCert\n",
                "needs client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  \
                 client_auth_type: VerifyClientCertIfGiven\n",
                "needs client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n",
                "cannot read /nonexistent-dir/ca",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS10\n",
                "TLS10 is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  max_version: TLS14\n",
                "max_version: unknown variant `TLS14`, expected one of `TLS10`",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  \
                 max_version: TLS12\n",
                "min_version TLS13 is above max_version TLS12",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  \
                 cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "cipher_suites: TLS_RSA_WITH_AES_128_CBC_SHA is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [CurveP521]\n",
                "CurveP521 is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  \
                 client_allowed_sans: [a.example]\n",
                "client_allowed_sans needs client_auth_type",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n",
                "cert_file: cannot read /nonexistent-dir/c: No such file",
            ),
            (
                "tls_server_config:\n  cert_file: /c\n  cert: x\n  key_file: k\n",
                "cert and cert_file are both set",
            ),
            (
                "rate_limit:\n  interval: 1s\n  burst: 5\n",
                "rate_limit is not supported",
            ),
        ];
        for (yaml, says) in cases {
            let e = err(yaml).to_string();
            assert!(e.contains(says) && !e.contains('\n'), "{yaml:?}: {e}");
        }
    }

    #[test]
    fn every_spelling_the_toolkit_takes_is_read() {
        let auth = |v: &str| {
            yaml_serde::from_str::<TlsFile>(&format!("client_auth_type: {v}\n"))
                .unwrap()
                .client_auth_type
        };
        for (spelt, is) in [
            ("\"\"", ClientAuth::NoClientCert),
            ("NoClientCert", ClientAuth::NoClientCert),
            ("RequestClientCert", ClientAuth::RequestClientCert),
            ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
            ("RequireClientCert", ClientAuth::RequireAnyClientCert),
            (
                "VerifyClientCertIfGiven",
                ClientAuth::VerifyClientCertIfGiven,
            ),
            (
                "RequireAndVerifyClientCert",
                ClientAuth::RequireAndVerifyClientCert,
            ),
        ] {
            assert_eq!(auth(spelt), Some(is), "{spelt}");
        }
        let t: TlsFile = yaml_serde::from_str(
            "min_version: TLS10\nmax_version: TLS13\n\
             curve_preferences: [CurveP256, CurveP384, CurveP521, X25519]\n",
        )
        .unwrap();
        assert_eq!(t.min_version, Some(TlsVersion::Tls10));
        assert_eq!(t.max_version, Some(TlsVersion::Tls13));
        assert_eq!(
            t.curve_preferences.unwrap(),
            [
                Curve::CurveP256,
                Curve::CurveP384,
                Curve::CurveP521,
                Curve::X25519
            ]
        );
        assert_eq!(
            versions(Some(TlsVersion::Tls13), None).unwrap(),
            [&rustls::version::TLS13]
        );
        let c = parse(
            "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n    \
             X-Frame-Options: sameorigin\n    Strict-Transport-Security: max-age=31536000\n    \
             X-XSS-Protection: \"1; mode=block\"\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            c.headers,
            [
                ("Strict-Transport-Security", "max-age=31536000".to_string()),
                ("X-Content-Type-Options", "nosniff".to_string()),
                ("X-Frame-Options", "sameorigin".to_string()),
                ("X-XSS-Protection", "1; mode=block".to_string()),
            ]
        );
    }

    #[test]
    fn errors_keep_what_they_come_from() {
        use std::error::Error as _;
        // The YAML error, with its place.
        let WebConfigError::Yaml(e) = err("tls_server_config:\n  client_auth_type: Sometimes\n")
        else {
            panic!("not a YAML error");
        };
        let at = e.location().expect("a location");
        assert_eq!((at.line(), at.column()), (2, 21));
        // A certificate file's io::Error.
        let e = err("tls_server_config:\n  cert_file: c\n  key_file: k\n");
        assert!(
            matches!(&e, WebConfigError::ReadFile { key: "cert_file", path, source }
                if path == Path::new("/nonexistent-dir/c")
                    && source.kind() == std::io::ErrorKind::NotFound),
            "{e:?}"
        );
        assert!(e.source().is_some());
        // The file's own, under Error::WebConfig with its path.
        let e = load(Path::new("/nonexistent-dir/web.yml"))
            .err()
            .expect("no such file");
        assert!(
            matches!(&e, Error::WebConfig { path, reason }
                if path == Path::new("/nonexistent-dir/web.yml")
                    && matches!(reason.as_ref(), WebConfigError::Read(io)
                        if io.kind() == std::io::ErrorKind::NotFound)),
            "{e:?}"
        );
        let reason = e.source().expect("the reason");
        assert!(reason.source().is_some(), "and its io::Error");
        assert_eq!(
            e.to_string(),
            "--web.config.file /nonexistent-dir/web.yml: cannot read it: No such file or directory"
        );
    }

    #[test]
    fn go_cipher_names_pick_tls12_suites_and_keep_tls13() {
        let p = rustls::crypto::ring::default_provider();
        let names = ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".to_string()];
        let picked = suites(&p, &names).unwrap();
        let tls12: Vec<_> = picked.iter().filter(|s| s.tls13().is_none()).collect();
        assert_eq!(tls12.len(), 1);
        assert_eq!(
            tls12[0].suite().as_str(),
            Some("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")
        );
        assert!(picked.iter().any(|s| s.tls13().is_some()));
        let groups = curves(&p, &[Curve::X25519, Curve::CurveP256]).unwrap();
        assert_eq!(groups[0].name(), rustls::NamedGroup::X25519);
    }
}
