//! The webhook's certificates, pure: a self-signed CA and a serving certificate for the
//! webhook Service (rcgen, ECDSA P-256), their PEM form as kept in the Secret, when they
//! need renewing, and the rustls key they are served with.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a new CA and serving certificate are valid.
pub const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// A certificate with less than this left is renewed.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The Secret's key holding the serving certificate (PEM).
pub const TLS_CRT: &str = "tls.crt";
/// The Secret's key holding the serving certificate's private key (PEM, PKCS#8).
pub const TLS_KEY: &str = "tls.key";
/// The Secret's key holding the CA bundle to trust (PEM: the CA, and after a renewal the
/// previous CA while it is valid, so replicas still serving the old certificate stay
/// trusted until they load the new one).
pub const CA_CRT: &str = "ca.crt";

/// Why certificates cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM entry is missing or does not parse.
    #[error("{0}")]
    Unreadable(String),
    /// rustls rejected the key.
    #[error("the key cannot be served: {0}")]
    Key(#[from] rustls::Error),
}

/// The PEM texts of the webhook's certificates, as kept in the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBundle {
    /// The serving certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
    /// The CA bundle clients trust (the webhook configuration's `caBundle`).
    pub ca_pem: String,
}

/// The DNS names the serving certificate is for: the Service `service` in `namespace`,
/// as the API server calls it (`<service>.<namespace>.svc`) and its other forms.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ]
}

fn offset(t: SystemTime) -> Result<time::OffsetDateTime, CertError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CertError::Unreadable("the clock is before 1970".into()))?
        .as_secs();
    let secs =
        i64::try_from(secs).map_err(|_| CertError::Unreadable("the clock is too far".into()))?;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| CertError::Unreadable(format!("the clock: {e}")))
}

/// A new CA and a serving certificate for `names` signed by it, valid from an hour
/// before `now` (clocks differ) for [`VALIDITY`]. `previous_ca_pem`, the CA bundle in
/// force, is kept in the new bundle after the new CA for the certificates of it that
/// are still valid at `now`.
pub fn generate(
    names: &[String],
    now: SystemTime,
    previous_ca_pem: Option<&str>,
) -> Result<CertBundle, CertError> {
    let not_before = offset(now - Duration::from_secs(3600))?;
    let not_after = offset(now + VALIDITY)?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "ferrolb-webhook-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(names.to_vec())?;
    serving.distinguished_name = DistinguishedName::new();
    if let Some(first) = names.first() {
        serving
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving.use_authority_key_identifier_extension = true;
    serving.not_before = not_before;
    serving.not_after = not_after;
    let issuer = Issuer::from_params(&ca, &ca_key);
    let cert = serving.signed_by(&key, &issuer)?;

    let mut ca_pem = ca_cert.pem();
    for old in previous_ca_pem
        .map(|p| {
            CertificateDer::pem_slice_iter(p.as_bytes())
                .flatten()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    {
        if not_after_of(&old).is_some_and(|t| t > now) {
            ca_pem.push_str(&pem_of(&old));
        }
    }
    Ok(CertBundle {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem,
    })
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    let text = pem_base64(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn pem_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl CertBundle {
    /// The serving certificate, first of `tls.crt`.
    fn cert_der(&self) -> Result<CertificateDer<'static>, CertError> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| CertError::Unreadable(format!("{TLS_CRT}: {e}")))
    }

    /// The key rustls serves with; fails when the certificate, the key or the pair does
    /// not hold together.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertError> {
        let cert = self.cert_der()?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| CertError::Unreadable(format!("{TLS_KEY}: {e}")))?;
        let provider = rustls::crypto::ring::default_provider();
        Ok(Arc::new(CertifiedKey::from_der(
            vec![cert],
            key,
            &provider,
        )?))
    }

    /// When the serving certificate or the first CA of the bundle expires, whichever
    /// comes first.
    pub fn expires(&self) -> Result<SystemTime, CertError> {
        let cert = self.cert_der()?;
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
            .map_err(|e| CertError::Unreadable(format!("{CA_CRT}: {e}")))?;
        let of = |der: &CertificateDer<'_>, what: &str| {
            not_after_of(der).ok_or_else(|| {
                CertError::Unreadable(format!("{what}: no validity period could be read"))
            })
        };
        Ok(of(&cert, TLS_CRT)?.min(of(&ca, CA_CRT)?))
    }

    /// Whether it must be replaced at `now`: unreadable, or less than
    /// [`RENEW_BEFORE`] left.
    pub fn needs_renewal(&self, now: SystemTime) -> bool {
        self.certified_key().is_err()
            || self.expires().map_or(true, |t| {
                t.duration_since(now)
                    .map_or(true, |left| left < RENEW_BEFORE)
            })
    }
}

/// The `notAfter` of a DER certificate (a minimal DER walk: Certificate → TBSCertificate
/// → validity), `None` when it cannot be read.
pub fn not_after_of(der: &[u8]) -> Option<SystemTime> {
    let (tag, certificate, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, mut tbs, _) = tlv(certificate)?;
    if tag != 0x30 {
        return None;
    }
    // version [0] (optional), serialNumber, signature, issuer, then validity.
    let mut skipped = 0;
    loop {
        let (tag, value, rest) = tlv(tbs)?;
        if tag == 0xa0 && skipped == 0 {
            tbs = rest;
            continue;
        }
        if skipped == 3 {
            if tag != 0x30 {
                return None;
            }
            let (_, _, after_not_before) = tlv(value)?;
            let (tag, time, _) = tlv(after_not_before)?;
            return parse_time(tag, time);
        }
        skipped += 1;
        tbs = rest;
    }
}

/// One DER tag-length-value: the tag, the value and what follows.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (value, after) = rest.split_at(len);
    Some((tag, value, after))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, value: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |s: &str| s.parse::<i64>().ok();
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(&digits[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4])?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| num(&rest[i..i + 2]);
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        service_names("ferrolb-webhook-service", "metallb-system")
    }

    #[test]
    fn a_new_bundle_serves_and_lasts_ten_years() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let bundle = generate(&names(), now, None).expect("generates");
        bundle
            .certified_key()
            .expect("the key matches the certificate");
        let expires = bundle.expires().expect("readable");
        assert_eq!(expires, now + VALIDITY);
        assert!(!bundle.needs_renewal(now));
        assert!(!bundle.needs_renewal(now + VALIDITY - RENEW_BEFORE - Duration::from_secs(1)));
        assert!(bundle.needs_renewal(now + VALIDITY - RENEW_BEFORE + Duration::from_secs(1)));
    }

    #[test]
    fn a_renewal_keeps_the_previous_ca_while_it_is_valid() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let old = generate(&names(), now, None).expect("generates");
        let new =
            generate(&names(), now + Duration::from_secs(60), Some(&old.ca_pem)).expect("renews");
        assert!(new.ca_pem.ends_with(&old.ca_pem), "{}", new.ca_pem);
        assert_eq!(
            CertificateDer::pem_slice_iter(new.ca_pem.as_bytes()).count(),
            2
        );
        // An expired previous CA is dropped.
        let later = generate(
            &names(),
            now + VALIDITY + Duration::from_secs(1),
            Some(&old.ca_pem),
        )
        .expect("renews");
        assert_eq!(
            CertificateDer::pem_slice_iter(later.ca_pem.as_bytes()).count(),
            1
        );
    }

    #[test]
    fn garbage_needs_renewal_and_never_panics() {
        let bad = CertBundle {
            cert_pem: "nope".into(),
            key_pem: String::new(),
            ca_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        };
        assert!(bad.needs_renewal(SystemTime::now()));
        for cut in 0..64 {
            let _ = not_after_of(&[0x30, 0x82, 0xff, 0xff][..cut.min(4)]);
        }
    }

    #[test]
    fn der_times() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_time(0x18, b"20330518033320Z"),
            Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(parse_time(0x17, b"7001010000Z"), None);
    }
}
