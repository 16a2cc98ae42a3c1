//! Why a `--web.config.file` cannot be used: one variant per failure, each keeping what it
//! comes from (the `io::Error` of a file, the YAML error with its line and column, rustls's
//! refusal), and a one-line message that names the key and says what to do. It lives here, not
//! in the exporter, because `Error::WebConfig` holds it and the exporter imports `error`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::{io_reason, one_line};

/// A certificate or key of the file: its key (`tls_server_config.cert_file`) and, for a file,
/// its path.
#[derive(Debug, Clone)]
pub struct Place {
    pub key: &'static str,
    pub file: Option<PathBuf>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls_server_config.{}", self.key)?;
        match &self.file {
            Some(p) => write!(f, " {}", p.display()),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
pub enum WebConfigError {
    /// The file itself could not be read.
    Read(io::Error),
    /// Not YAML, or not the toolkit's format: a syntax error, an unknown key, a value of the
    /// wrong type or a name the toolkit does not have (client_auth_type, min_version,
    /// curve_preferences, a header's value). The YAML error knows its line and column.
    Yaml(yaml_serde::Error),
    /// A key of the toolkit's this exporter does not do (`rate_limit`).
    NotSupported {
        key: &'static str,
        why: &'static str,
    },
    /// A value the toolkit takes that rustls (ring) has not: TLS10/TLS11, CurveP521, a cipher
    /// suite; `instead` lists what this build has.
    Unsupported {
        key: &'static str,
        value: String,
        why: &'static str,
        instead: String,
    },
    /// The same thing given inline and as a file (`cert` and `cert_file`).
    BothSet {
        inline: &'static str,
        file: &'static str,
    },
    /// TLS asked for (a key, a certificate or client auth) without this key.
    Missing { key: &'static str },
    /// The certificate inline and the key from a file, or the other way round.
    Mixed,
    /// A client CA with `client_auth_type` NoClientCert: the CA would check nothing.
    CaWithoutClientAuth,
    /// A `client_auth_type` that verifies client certificates, without a CA to verify them.
    NoClientCa { client_auth: &'static str },
    /// `client_allowed_sans` with a `client_auth_type` that does not require a certificate.
    SansWithoutCert,
    /// A `client_allowed_sans` entry that is not a DNS name or an IP address.
    BadSan { san: String },
    /// `min_version` above `max_version`.
    VersionOrder {
        min: &'static str,
        max: &'static str,
    },
    /// A header value with a line break, which would split the response head.
    HeaderLineBreak { name: &'static str },
    /// A `basic_auth_users` password that is not a bcrypt hash.
    NotBcrypt { user: String },
    /// A certificate, key or CA file that could not be read.
    ReadFile {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Certificates whose PEM does not parse.
    Pem {
        place: Place,
        source: rustls::pki_types::pem::Error,
    },
    /// PEM without a certificate in it.
    NoCertificate { place: Place },
    /// No private key rustls can use in the key's PEM.
    Key {
        place: Place,
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the pair: the key is not the certificate's (`InconsistentKeys`), or
    /// either is unusable. (Boxed, to keep every result that may hold this error small.)
    KeyPair {
        cert: Place,
        key: Place,
        source: Box<rustls::Error>,
    },
    /// rustls refused the certificate, a CA certificate or the protocol versions.
    Tls {
        what: &'static str,
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built from the CA.
    Verifier(rustls::server::VerifierBuilderError),
}

/// What a certificate must look like.
const PEM: &str = "give the certificate in PEM (-----BEGIN CERTIFICATE-----)";

/// How to make a bcrypt hash the toolkit (and we) accept.
const HTPASSWD: &str = "make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`";

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WebConfigError as E;
        match self {
            E::Read(e) => write!(f, "cannot read it: {}", io_reason(e)),
            // The YAML error ends with its place, `at line L column C`.
            E::Yaml(e) => f.write_str(&one_line(&e.to_string())),
            E::NotSupported { key, why } => write!(f, "{key} is not supported ({why}); remove it"),
            E::Unsupported {
                key,
                value,
                why,
                instead,
            } => write!(
                f,
                "tls_server_config.{key}: {value} is not supported ({why}); use {instead}"
            ),
            E::BothSet { inline, file } => write!(
                f,
                "tls_server_config: {inline} and {file} are both set; keep one"
            ),
            E::Missing { key } => write!(f, "tls_server_config: missing {key}"),
            E::Mixed => f.write_str(
                "tls_server_config: give cert_file and key_file, or cert and key, not a mix",
            ),
            E::CaWithoutClientAuth => f.write_str(
                "tls_server_config: client_ca_file is set but client_auth_type is \
                 NoClientCert; set client_auth_type: RequireAndVerifyClientCert",
            ),
            E::NoClientCa { client_auth } => write!(
                f,
                "tls_server_config: client_auth_type {client_auth} verifies client \
                 certificates and needs client_ca_file"
            ),
            E::SansWithoutCert => f.write_str(
                "tls_server_config: client_allowed_sans needs client_auth_type \
                 RequireAnyClientCert or RequireAndVerifyClientCert",
            ),
            E::BadSan { san } => write!(
                f,
                "tls_server_config.client_allowed_sans: {san:?} is not a DNS name or an IP \
                 address (e-mail and URI SANs are not supported)"
            ),
            E::VersionOrder { min, max } => write!(
                f,
                "tls_server_config: min_version {min} is above max_version {max}; swap them"
            ),
            E::HeaderLineBreak { name } => write!(
                f,
                "http_server_config.headers: {name} has a line break; give its value on one line"
            ),
            E::NotBcrypt { user } => write!(
                f,
                "basic_auth_users: the password of {user:?} is not a bcrypt hash ($2y$10$ \
                 followed by 53 characters; {HTPASSWD})"
            ),
            E::ReadFile { key, path, source } => write!(
                f,
                "tls_server_config.{key}: cannot read {}: {}",
                path.display(),
                io_reason(source)
            ),
            E::Pem { place, source } => write!(f, "{place}: not PEM certificates: {source}; {PEM}"),
            E::NoCertificate { place } => write!(f, "{place}: no PEM certificate in it; {PEM}"),
            E::Key { place, source } => write!(
                f,
                "{place}: no usable PEM private key in it: {source}; give the key in PEM \
                 (PKCS#8, RSA or EC)"
            ),
            E::KeyPair { cert, key, source } => key_pair(f, cert, key, source),
            E::Tls { what, source } => write!(f, "tls_server_config: {what}: {source}"),
            E::Verifier(e) => write!(
                f,
                "tls_server_config: client verification cannot be set up: {e}; check \
                 client_ca_file"
            ),
        }
    }
}

/// rustls refused the certificate and key as a pair: usually the key is another's.
fn key_pair(
    f: &mut fmt::Formatter<'_>,
    cert: &Place,
    key: &Place,
    e: &rustls::Error,
) -> fmt::Result {
    match e {
        rustls::Error::InconsistentKeys(_) => write!(
            f,
            "the private key in {key} does not match the certificate in {cert}; give the key \
             the certificate was made for"
        ),
        e => write!(f, "{cert} and {key}: {e}"),
    }
}

impl std::error::Error for WebConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use WebConfigError as E;
        match self {
            E::Read(e) | E::ReadFile { source: e, .. } => Some(e),
            E::Yaml(e) => Some(e),
            E::Pem { source, .. } | E::Key { source, .. } => Some(source),
            E::Tls { source, .. } => Some(source),
            E::KeyPair { source, .. } => Some(source.as_ref()),
            E::Verifier(e) => Some(e),
            _ => None,
        }
    }
}

impl From<yaml_serde::Error> for WebConfigError {
    fn from(e: yaml_serde::Error) -> Self {
        WebConfigError::Yaml(e)
    }
}
