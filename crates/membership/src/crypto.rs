//! The outer layer of every datagram: plaintext, or sealed with ChaCha20-Poly1305.
//!
//! ```text
//! plaintext = 0x01 packet
//! sealed    = 0x02 nonce:12 ciphertext+tag:(len(packet) + 16)
//! ```
//!
//! The key is derived from a shared secret (the bytes of a Kubernetes Secret) with
//! HKDF-SHA256, so any length of secret works and the same secret never serves two
//! purposes. Each packet gets a fresh random 96-bit nonce from the operating system;
//! the format byte is authenticated as associated data. With random nonces a key should
//! seal fewer than 2^32 packets: at 100 packets per second that is over a year, and keys
//! are meant to be rotated well before.
//!
//! Rotation: a [`Keyring`] holds several keys; the first seals, any of them opens. Roll a
//! new secret out as a second key on every node, then make it first everywhere, then
//! remove the old one.
//!
//! Sealing does not stop replays by someone on the path. The protocol makes them
//! harmless or short-lived: news older than a member's incarnation is ignored, and a
//! replayed suspicion, death or departure of a live node reaches that node (every packet
//! to a member we do not think alive says so) and is refuted within a round trip.
//!
//! Without a secret, gossip is plaintext: anyone who can send UDP to port 7946 can then
//! inject members, declare nodes dead or make a node leave, which moves load-balancer
//! addresses. Use a secret on any network that is not fully trusted.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use thiserror::Error;

use crate::config::ConfigError;

/// Format byte of a plaintext datagram.
pub const FORMAT_PLAIN: u8 = 0x01;
/// Format byte of a ChaCha20-Poly1305 sealed datagram.
pub const FORMAT_CHACHA20POLY1305: u8 = 0x02;
/// Bytes a sealed datagram adds to its packet (format, nonce, tag).
pub const SEAL_OVERHEAD: usize = 1 + 12 + 16;

const HKDF_SALT: &[u8] = b"ferrolb-membership";
const HKDF_INFO: &[u8] = b"gossip chacha20-poly1305 key v1";

/// Why a received datagram was dropped before decoding.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum OpenError {
    /// An empty datagram.
    #[error("empty datagram")]
    Empty,
    /// A format byte this node does not know.
    #[error("unknown datagram format {0:#04x}")]
    Format(u8),
    /// A plaintext datagram while a key is set.
    #[error("plaintext datagram while encryption is on")]
    Plaintext,
    /// A sealed datagram while no key is set.
    #[error("encrypted datagram while encryption is off")]
    NoKey,
    /// No accepted key opens it (wrong key, tampered or truncated).
    #[error("datagram failed authentication")]
    Unauthenticated,
}

/// Why a datagram could not be sealed.
#[derive(Debug, Error)]
#[error("no randomness for a nonce: {0}")]
pub struct SealError(String);

/// A 256-bit key, derived from a secret.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Derives the key from secret bytes (HKDF-SHA256 with a fixed salt and purpose).
    pub fn derive(secret: &[u8]) -> Result<SecretKey, ConfigError> {
        if secret.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(HKDF_SALT), secret)
            .expand(HKDF_INFO, &mut okm)
            // 32 bytes is far below HKDF-SHA256's limit of 8160.
            .map_err(|_| ConfigError::EmptySecret)?;
        Ok(SecretKey(okm))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// The keys this node accepts; the first one seals.
#[derive(Clone)]
pub struct Keyring {
    ciphers: Vec<ChaCha20Poly1305>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.ciphers.len())
    }
}

impl Keyring {
    /// A keyring from secrets, the first one used to seal. None for an empty list.
    pub fn from_secrets<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Option<Keyring>, ConfigError> {
        let keys = secrets
            .iter()
            .map(|s| SecretKey::derive(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::from_keys(&keys))
    }

    /// A keyring from derived keys, the first one used to seal. None for an empty list.
    pub fn from_keys(keys: &[SecretKey]) -> Option<Keyring> {
        if keys.is_empty() {
            return None;
        }
        Some(Keyring {
            ciphers: keys
                .iter()
                .map(|k| ChaCha20Poly1305::new(Key::from_slice(&k.0)))
                .collect(),
        })
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.ciphers.len()
    }

    /// Always false: a keyring has at least one key.
    pub fn is_empty(&self) -> bool {
        self.ciphers.is_empty()
    }

    /// Seals a packet with the first key and a fresh random nonce.
    pub fn seal(&self, packet: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| SealError(e.to_string()))?;
        self.seal_with_nonce(packet, nonce)
    }

    fn seal_with_nonce(&self, packet: &[u8], nonce: [u8; 12]) -> Result<Vec<u8>, SealError> {
        let aad = [FORMAT_CHACHA20POLY1305];
        let sealed = self.ciphers[0]
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: packet,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError("packet too large to seal".into()))?;
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + packet.len());
        out.push(FORMAT_CHACHA20POLY1305);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a sealed datagram with any accepted key.
    pub fn open(&self, datagram: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (&format, rest) = datagram.split_first().ok_or(OpenError::Empty)?;
        match format {
            FORMAT_CHACHA20POLY1305 => {}
            FORMAT_PLAIN => return Err(OpenError::Plaintext),
            other => return Err(OpenError::Format(other)),
        }
        if rest.len() < 12 + 16 {
            return Err(OpenError::Unauthenticated);
        }
        let (nonce, sealed) = rest.split_at(12);
        let aad = [FORMAT_CHACHA20POLY1305];
        self.ciphers
            .iter()
            .find_map(|c| {
                c.decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .ok()
            })
            .ok_or(OpenError::Unauthenticated)
    }
}

/// Wraps an encoded packet for sending: sealed with the keyring, or plaintext without.
pub fn wrap(keyring: Option<&Keyring>, packet: &[u8]) -> Result<Vec<u8>, SealError> {
    match keyring {
        Some(k) => k.seal(packet),
        None => {
            let mut out = Vec::with_capacity(1 + packet.len());
            out.push(FORMAT_PLAIN);
            out.extend_from_slice(packet);
            Ok(out)
        }
    }
}

/// Unwraps a received datagram: opened with the keyring, or the plaintext without one.
pub fn unwrap(keyring: Option<&Keyring>, datagram: &[u8]) -> Result<Vec<u8>, OpenError> {
    match keyring {
        Some(k) => k.open(datagram),
        None => match datagram.split_first() {
            None => Err(OpenError::Empty),
            Some((&FORMAT_PLAIN, rest)) => Ok(rest.to_vec()),
            Some((&FORMAT_CHACHA20POLY1305, _)) => Err(OpenError::NoKey),
            Some((&other, _)) => Err(OpenError::Format(other)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(secrets: &[&str]) -> Keyring {
        Keyring::from_secrets(secrets).unwrap().unwrap()
    }

    #[test]
    fn sealed_packets_open_with_the_same_key_only() {
        let a = ring(&["secret-a"]);
        let sealed = a.seal(b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(a.open(&sealed).unwrap(), b"hello");
        assert_eq!(
            ring(&["secret-b"]).open(&sealed),
            Err(OpenError::Unauthenticated)
        );
        // Two seals of the same packet differ (random nonce).
        assert_ne!(a.seal(b"hello").unwrap(), sealed);
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let a = ring(&["s"]);
        let sealed = a.seal(b"membership news").unwrap();
        for i in 1..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(a.open(&t), Err(OpenError::Unauthenticated), "byte {i}");
        }
        let mut f = sealed.clone();
        f[0] = 0x03;
        assert_eq!(a.open(&f), Err(OpenError::Format(3)));
        for cut in 0..sealed.len() {
            assert!(a.open(&sealed[..cut]).is_err());
        }
    }

    #[test]
    fn plaintext_and_sealed_do_not_mix() {
        let a = ring(&["s"]);
        let plain = wrap(None, b"x").unwrap();
        assert_eq!(unwrap(Some(&a), &plain), Err(OpenError::Plaintext));
        let sealed = wrap(Some(&a), b"x").unwrap();
        assert_eq!(unwrap(None, &sealed), Err(OpenError::NoKey));
        assert_eq!(unwrap(None, &plain).unwrap(), b"x");
        assert_eq!(unwrap(None, &[]), Err(OpenError::Empty));
    }

    #[test]
    fn rotation_accepts_old_and_new_keys() {
        let old = ring(&["old"]);
        let both = ring(&["new", "old"]);
        let new = ring(&["new"]);
        // A node with both keys reads either, and sends with the new one.
        assert!(both.open(&old.seal(b"1").unwrap()).is_ok());
        assert!(both.open(&new.seal(b"2").unwrap()).is_ok());
        let from_both = both.seal(b"3").unwrap();
        assert!(new.open(&from_both).is_ok());
        assert_eq!(old.open(&from_both), Err(OpenError::Unauthenticated));
    }

    #[test]
    fn empty_secrets_are_refused() {
        assert!(Keyring::from_secrets::<&[u8]>(&[]).unwrap().is_none());
        assert_eq!(
            Keyring::from_secrets(&[b"" as &[u8]]).unwrap_err(),
            ConfigError::EmptySecret
        );
    }
}
