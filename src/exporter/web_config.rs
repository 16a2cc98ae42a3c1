//! `--web.config.file`: prometheus/exporter-toolkit's web configuration (the file node_exporter,
//! Prometheus and most exporters take), read strictly — an unknown key is an error, as the
//! toolkit's `yaml.UnmarshalStrict` makes it — and checked whole before the server starts: the
//! certificate and key load and match, the CA loads, every password hash is bcrypt, every
//! header is one the toolkit allows. A file that fails any check is one error, never a server
//! that starts half-configured.
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
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The headers the toolkit lets a file add, with the values it accepts (None: any). Others,
/// such as Authorization or Content-Type, it refuses: so do we.
const HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

/// The toolkit's `client_auth_type` values (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // The toolkit keeps the old name for compatibility.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
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
    pub tls: Option<TlsSettings>,
    pub auth: Option<BasicAuth>,
    /// Extra response headers from `http_server_config.headers`, in the toolkit's spelling.
    pub headers: Vec<(&'static str, String)>,
}

/// Reads and checks `path`; the error is the reason, for `--web.config.file PATH: REASON`.
pub(crate) fn load(path: &Path) -> Result<WebConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {}", reason(&e)))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir)
}

/// `load` on text, with relative paths taken from `dir`.
pub(crate) fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
    // An empty file is a valid, empty configuration (plain HTTP, no auth), as in the toolkit.
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        yaml_serde::from_str(text).map_err(|e| one_line(&e.to_string()))?
    };
    if file.rate_limit.is_some() {
        return Err(
            "rate_limit is not supported by backlogctl exporter (scrapes are \
                    serialised already); remove it"
                .into(),
        );
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
    Ok(WebConfig { tls, auth, headers })
}

fn headers(h: Option<BTreeMap<String, String>>) -> Result<Vec<(&'static str, String)>, String> {
    let mut out = Vec::new();
    for (name, value) in h.unwrap_or_default() {
        let Some((known, allowed)) = HEADERS.iter().find(|(k, _)| *k == name) else {
            return Err(format!(
                "http_server_config.headers: HTTP header {name:?} can not be configured \
                 (allowed: {})",
                HEADERS.map(|(k, _)| k).join(", ")
            ));
        };
        if let Some(allowed) = allowed
            && !allowed.contains(&value.as_str())
        {
            return Err(format!(
                "http_server_config.headers: invalid value for {name}: {value:?}; expected one \
                 of {allowed:?}"
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(format!(
                "http_server_config.headers: {name} has a line break"
            ));
        }
        // Blank: unset, as the toolkit documents.
        if !value.is_empty() {
            out.push((*known, value));
        }
    }
    Ok(out)
}

fn tls(t: TlsFile, dir: &Path) -> Result<Option<TlsSettings>, String> {
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
    let client_auth_name = t.client_auth_type.unwrap_or_default();
    let client_auth = ClientAuth::parse(&client_auth_name).ok_or_else(|| {
        format!(
            "tls_server_config.client_auth_type: invalid ClientAuth {client_auth_name:?}; \
             expected NoClientCert, RequestClientCert, RequireAnyClientCert, \
             VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )
    })?;
    let client_ca = client_ca(t.client_ca, t.client_ca_file, dir)?;
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(
            "tls_server_config: client_ca_file is set but client_auth_type is \
                    NoClientCert; set client_auth_type: RequireAndVerifyClientCert"
                .into(),
        );
    }
    if client_auth.verifies() && client_ca.is_none() {
        return Err(format!(
            "tls_server_config: client_auth_type {client_auth_name} verifies client \
             certificates and needs client_ca_file"
        ));
    }
    let allowed_sans = allowed_sans(t.client_allowed_sans.unwrap_or_default(), client_auth)?;
    let versions = versions(t.min_version.as_deref(), t.max_version.as_deref())?;
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.filter(|n| !n.is_empty()) {
        provider.cipher_suites = suites(&provider, &names)?;
    }
    if let Some(names) = t.curve_preferences.filter(|n| !n.is_empty()) {
        provider.kx_groups = curves(&provider, &names)?;
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
) -> Result<Source, String> {
    match (cert, cert_file, key, key_file) {
        (Some(_), Some(_), _, _) => {
            Err("tls_server_config: cert and cert_file are both set; keep one".into())
        }
        (_, _, Some(_), Some(_)) => {
            Err("tls_server_config: key and key_file are both set; keep one".into())
        }
        (None, None, _, _) => Err("tls_server_config: missing cert_file".into()),
        (_, _, None, None) => Err("tls_server_config: missing key_file".into()),
        (Some(cert), None, Some(key), None) => Ok(Source::Inline { cert, key }),
        (None, Some(cert), None, Some(key)) => Ok(Source::Files {
            cert: under(dir, cert),
            key: under(dir, key),
        }),
        _ => {
            Err("tls_server_config: give cert_file and key_file, or cert and key, not a mix".into())
        }
    }
}

/// The client CA's certificates, inline or from a file; None when neither is given.
fn client_ca(
    pem: Option<String>,
    file: Option<PathBuf>,
    dir: &Path,
) -> Result<Option<Vec<CertificateDer<'static>>>, String> {
    match (pem, file) {
        (Some(_), Some(_)) => {
            Err("tls_server_config: client_ca and client_ca_file are both set; keep one".into())
        }
        (Some(pem), None) => Ok(Some(certs(pem.as_bytes(), "client_ca")?)),
        (None, Some(file)) => {
            let file = under(dir, file);
            let pem = std::fs::read(&file).map_err(|e| {
                format!(
                    "tls_server_config.client_ca_file: cannot read {}: {}",
                    file.display(),
                    reason(&e)
                )
            })?;
            Ok(Some(certs(
                &pem,
                &format!("client_ca_file {}", file.display()),
            )?))
        }
        (None, None) => Ok(None),
    }
}

/// `client_allowed_sans` as server names; they need a client certificate to check.
fn allowed_sans(
    sans: Vec<String>,
    client_auth: ClientAuth,
) -> Result<Vec<rustls::pki_types::ServerName<'static>>, String> {
    if !sans.is_empty() && !client_auth.requires() {
        return Err(
            "tls_server_config: client_allowed_sans needs client_auth_type \
                    RequireAnyClientCert or RequireAndVerifyClientCert"
                .into(),
        );
    }
    sans.into_iter()
        .map(|s| {
            rustls::pki_types::ServerName::try_from(s.clone()).map_err(|_| {
                format!(
                    "tls_server_config.client_allowed_sans: {s:?} is not a DNS name or an IP \
                     address (e-mail and URI SANs are not supported)"
                )
            })
        })
        .collect()
}

/// The protocol versions from `min_version` to `max_version` (TLS12 and TLS13 by default).
fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let min = version(min.unwrap_or("TLS12"), "min_version")?;
    let max = version(max.unwrap_or("TLS13"), "max_version")?;
    if min > max {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let mut versions = Vec::new();
    if min <= 12 && max >= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

/// TLS12 → 12; TLS10 and TLS11 exist in the toolkit but not in rustls.
fn version(s: &str, key: &str) -> Result<u8, String> {
    match s {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: {s} is not supported (rustls speaks TLS 1.2 and 1.3 only); \
             use TLS12"
        )),
        _ => Err(format!(
            "tls_server_config.{key}: unknown TLS version {s:?}; expected TLS12 or TLS13"
        )),
    }
}

/// TLS 1.3 suites are always kept (Go ignores cipher_suites for TLS 1.3); TLS 1.2 ones are
/// those listed, by Go's names, in the file's order.
fn suites(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
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
                return Err(format!(
                    "tls_server_config.cipher_suites: {name:?} is not supported; TLS 1.2 suites \
                     here: {}",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

fn curves(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    names
        .iter()
        .map(|name| {
            let group = match name.as_str() {
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP521" => {
                    return Err("tls_server_config.curve_preferences: CurveP521 is not \
                                supported here; use CurveP256, CurveP384 or X25519"
                        .to_string());
                }
                _ => {
                    return Err(format!(
                        "tls_server_config.curve_preferences: unknown curve {name:?}; expected \
                         CurveP256, CurveP384 or X25519"
                    ));
                }
            };
            provider
                .kx_groups
                .iter()
                .find(|g| g.name() == group)
                .copied()
                .ok_or_else(|| format!("tls_server_config.curve_preferences: {name} unavailable"))
        })
        .collect()
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate in it"));
    }
    Ok(certs)
}

impl TlsSettings {
    /// A server configuration with the certificate and key as they are now (read again from
    /// their files, when they are files).
    pub(crate) fn build(&self) -> Result<Arc<ServerConfig>, String> {
        let (cert_pem, key_pem, cert_name, key_name) = match &self.source {
            Source::Files { cert, key } => (
                std::fs::read(cert).map_err(|e| {
                    format!(
                        "tls_server_config.cert_file: cannot read {}: {}",
                        cert.display(),
                        reason(&e)
                    )
                })?,
                std::fs::read(key).map_err(|e| {
                    format!(
                        "tls_server_config.key_file: cannot read {}: {}",
                        key.display(),
                        reason(&e)
                    )
                })?,
                format!("cert_file {}", cert.display()),
                format!("key_file {}", key.display()),
            ),
            Source::Inline { cert, key } => (
                cert.clone().into_bytes(),
                key.clone().into_bytes(),
                "cert".to_string(),
                "key".to_string(),
            ),
        };
        let chain = certs(&cert_pem, &format!("tls_server_config.{cert_name}"))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            format!("tls_server_config.{key_name}: no usable PEM private key in it: {e}")
        })?;
        let verifier = self.verifier()?;
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|e| format!("tls_server_config: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => format!(
                    "tls_server_config: the private key in {key_name} does not match the \
                     certificate in {cert_name}"
                ),
                e => format!("tls_server_config: {cert_name} and {key_name}: {e}"),
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

    fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, String> {
        let inner: Arc<dyn ClientCertVerifier> = match self.client_auth {
            ClientAuth::NoClientCert => return Ok(WebPkiClientVerifier::no_client_auth()),
            ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => Arc::new(AnyCert {
                mandatory: self.client_auth.requires(),
                provider: self.provider.clone(),
            }),
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
                let mut roots = RootCertStore::empty();
                for c in &self.client_ca {
                    roots.add(c.clone()).map_err(|e| {
                        format!("tls_server_config: a client CA certificate is unusable: {e}")
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
                builder
                    .build()
                    .map_err(|e| format!("tls_server_config: client verification: {e}"))?
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

/// `io::Error` without its "(os error N)".
fn reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// yaml_serde's messages may span lines; the error is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze";

    fn err(yaml: &str) -> String {
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
                "\"Authorization\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    Content-Type: x\n",
                "\"Content-Type\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "invalid value for X-Frame-Options",
            ),
            ("tls_server_config:\n  key_file: k\n", "missing cert_file"),
            ("tls_server_config:\n  cert_file: c\n", "missing key_file"),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Sometimes\n",
                "invalid ClientAuth \"Sometimes\"",
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
                "unknown TLS version \"TLS14\"",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  \
                 max_version: TLS12\n",
                "min_version is above max_version",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  \
                 cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "\"TLS_RSA_WITH_AES_128_CBC_SHA\" is not supported",
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
            let e = err(yaml);
            assert!(e.contains(says) && !e.contains('\n'), "{yaml:?}: {e}");
        }
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
        let groups = curves(&p, &["X25519".into(), "CurveP256".into()]).unwrap();
        assert_eq!(groups[0].name(), rustls::NamedGroup::X25519);
    }
}
