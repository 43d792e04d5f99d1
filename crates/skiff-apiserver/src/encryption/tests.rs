//! Encryption round trips, rotation and failure modes.

use super::*;

#[test]
fn round_trip_hides_the_plaintext() {
    let e = Encryption::new(&KeyFile::generate()).expect("keys");
    let secret = br#"{"data":{"password":"aHVudGVyMg=="}}"#;
    let stored = e.encrypt(secret);
    assert!(Encryption::is_encrypted(&stored));
    assert!(
        !stored.windows(8).any(|w| w == b"aHVudGVy"),
        "plaintext leaked"
    );
    assert_eq!(e.decrypt(&stored).expect("decrypts"), secret);
}

#[test]
fn rotation_keeps_old_data_readable_and_encrypts_with_the_new_key() {
    let old = KeyFile::generate();
    let stored_old = Encryption::new(&old).expect("keys").encrypt(b"old");
    let mut rotated = KeyFile::generate();
    rotated.keys.extend(old.keys.clone());
    let e = Encryption::new(&rotated).expect("keys");
    assert_eq!(e.decrypt(&stored_old).expect("old readable"), b"old");
    let stored_new = e.encrypt(b"new");
    let name = &rotated.keys[0].name;
    assert!(stored_new.windows(name.len()).any(|w| w == name.as_bytes()));
}

#[test]
fn missing_keys_and_tampering_are_errors() {
    let a = Encryption::new(&KeyFile::generate()).expect("keys");
    let b = Encryption::new(&KeyFile::generate()).expect("keys");
    let stored = a.encrypt(b"x");
    assert!(matches!(b.decrypt(&stored), Err(Error::UnknownKey(_))));
    let mut tampered = stored.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(a.decrypt(&tampered), Err(Error::Decrypt)));
    assert!(matches!(
        a.decrypt(b"k8s:enc:aesgcm:v1:nocolon"),
        Err(Error::Malformed)
    ));
    assert_eq!(a.decrypt(b"plain").expect("unencrypted passes"), b"plain");
    assert!(matches!(
        Encryption::new(&KeyFile { keys: vec![] }),
        Err(Error::NoKeys)
    ));
}
