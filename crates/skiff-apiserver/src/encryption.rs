//! Encryption of Secrets at rest (AES-256-GCM), so their plaintext never reaches RocksDB, the
//! Raft log or a snapshot.
//!
//! Stored form: `k8s:enc:aesgcm:v1:<key name>:` + 12-byte nonce + ciphertext (with tag). The
//! key file lists keys; the first encrypts, every one decrypts, so rotating (prepending a new
//! key) keeps old data readable. The key file must be kept with backups: without it, Secrets
//! cannot be read.

#[cfg(test)]
mod tests;

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};

const PREFIX: &[u8] = b"k8s:enc:aesgcm:v1:";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the encryption key file {path}: {detail}")]
    File { path: String, detail: String },
    #[error("the encryption key file has no keys")]
    NoKeys,
    #[error("key {0:?} is not 32 bytes of base64")]
    BadKey(String),
    #[error(
        "data is encrypted with key {0:?}, which is not in the key file (restore the key file that was in use)"
    )]
    UnknownKey(String),
    #[error("decryption failed: the data or the key is corrupt")]
    Decrypt,
    #[error("malformed encrypted data")]
    Malformed,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    pub name: String,
    /// 32 random bytes, base64.
    pub secret: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub keys: Vec<KeyEntry>,
}

/// The keys in use.
pub struct Encryption {
    keys: Vec<(String, Aes256Gcm)>,
}

impl KeyFile {
    /// A key file with one new random key.
    pub fn generate() -> KeyFile {
        let secret: [u8; 32] = rand::random();
        KeyFile {
            keys: vec![KeyEntry {
                name: format!("key-{}", hex::encode(rand::random::<[u8; 4]>())),
                secret: base64::engine::general_purpose::STANDARD.encode(secret),
            }],
        }
    }
}

impl Encryption {
    pub fn from_file(path: &Path) -> Result<Encryption, Error> {
        let err = |detail: String| Error::File {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        Encryption::new(&file)
    }

    pub fn new(file: &KeyFile) -> Result<Encryption, Error> {
        if file.keys.is_empty() {
            return Err(Error::NoKeys);
        }
        let mut keys = Vec::new();
        for k in &file.keys {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&k.secret)
                .map_err(|_| Error::BadKey(k.name.clone()))?;
            if bytes.len() != 32 || k.name.contains(':') {
                return Err(Error::BadKey(k.name.clone()));
            }
            keys.push((
                k.name.clone(),
                Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            ));
        }
        Ok(Encryption { keys })
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let (name, cipher) = &self.keys[0];
        let nonce_bytes: [u8; 12] = rand::random();
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), plaintext)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(PREFIX.len() + name.len() + 13 + ciphertext.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts stored data; data without the prefix (written before encryption) is returned as is.
    pub fn decrypt(&self, stored: &[u8]) -> Result<Vec<u8>, Error> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_vec());
        };
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or(Error::Malformed)?;
        let name = String::from_utf8_lossy(&rest[..colon]).into_owned();
        let body = &rest[colon + 1..];
        if body.len() < 12 + 16 {
            return Err(Error::Malformed);
        }
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or(Error::UnknownKey(name))?;
        cipher
            .decrypt(Nonce::from_slice(&body[..12]), &body[12..])
            .map_err(|_| Error::Decrypt)
    }

    pub fn is_encrypted(stored: &[u8]) -> bool {
        stored.starts_with(PREFIX)
    }
}
