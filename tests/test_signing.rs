//! Signed envelopes: only the key holder's bytes, for the context they were
//! signed for, are decoded; everything else is `Error::Unauthenticated`
//! before a byte is decoded.

mod support;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serfn::codec::{self, Key, FORMAT_VERSION, TAG_LEN};
use serfn::{Error, Limits, SerFn};
use support::{body, seal, Wire};

#[derive(Serialize, Deserialize)]
struct Offset {
    by: i64,
}

impl serfn::Call<i64> for Offset {
    type Output = i64;
    fn call(&self, x: i64) -> i64 {
        x + self.by
    }
}

serfn::register_instance!(Offset as Call<i64>, name = "signing::Offset");

const CONTEXT: &[u8] = b"job:42/task:7";

fn key() -> Key {
    Key::new(*b"0123456789abcdef0123456789abcdef")
}

fn signed() -> Vec<u8> {
    serfn::to_bytes_signed(&SerFn::new(Offset { by: 5 }), &key(), CONTEXT).unwrap()
}

fn read(bytes: &[u8], key: &Key, context: &[u8]) -> serfn::Result<SerFn<i64, i64>> {
    serfn::from_bytes_signed(bytes, key, context)
}

#[track_caller]
fn assert_unauthenticated(result: serfn::Result<SerFn<i64, i64>>, what: &str) -> String {
    match result {
        Err(Error::Unauthenticated { reason }) => reason,
        other => panic!("{what}: {:?}", other.map(|_| "a function")),
    }
}

/// A signed envelope's parts: everything the tag covers, and the tag.
fn split(signed: &[u8]) -> (&[u8], &[u8]) {
    signed.split_at(signed.len() - TAG_LEN)
}

#[test]
fn round_trip() {
    let bytes = signed();
    assert_eq!(bytes[0], FORMAT_VERSION | 0x80);
    let (envelope, _) = split(&bytes);
    // Under the tag, the plain envelope's body.
    assert_eq!(
        body(envelope),
        body(&serfn::to_bytes(&SerFn::new(Offset { by: 5 })).unwrap())
    );
    assert_eq!(read(&bytes, &key(), CONTEXT).unwrap().call(1), 6);
    // Under explicit limits too.
    let f: SerFn<i64, i64> = Limits::default()
        .from_bytes_signed(&bytes, &key(), CONTEXT)
        .unwrap();
    assert_eq!(f.call(-5), 0);
}

#[test]
fn the_tag_is_the_documented_hmac() {
    use hmac::{Hmac, Mac};
    let tag = |label: &[u8], message: &[u8]| {
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
        for part in [
            label,
            &(CONTEXT.len() as u64).to_le_bytes(),
            CONTEXT,
            message,
        ] {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    };
    let bytes = signed();
    let (envelope, stored) = split(&bytes);
    assert_eq!(stored, tag(b"serfn/envelope/v2", envelope));
    let any = codec::sign(&key(), CONTEXT, &b"any bytes"[..]);
    assert_eq!(&any[9..], tag(b"serfn/bytes/v1", b"any bytes"));
}

#[test]
fn signing_is_deterministic_and_plain_envelopes_are_unchanged() {
    assert_eq!(signed(), signed());
    let f = SerFn::new(Offset { by: 5 });
    let plain = serfn::to_bytes(&f).unwrap();
    assert_eq!(plain[0], FORMAT_VERSION);
    assert_eq!(plain.len() + TAG_LEN, signed().len());
}

#[test]
fn every_single_byte_change_is_unauthenticated() {
    let bytes = signed();
    for at in 0..bytes.len() {
        for delta in 1..=255u8 {
            let mut changed = bytes.clone();
            changed[at] = changed[at].wrapping_add(delta);
            assert_unauthenticated(
                read(&changed, &key(), CONTEXT),
                &format!("byte {at} + {delta}"),
            );
        }
    }
}

#[test]
fn a_forged_capture_with_its_checksum_recomputed_is_unauthenticated() {
    let bytes = signed();
    let (envelope, tag) = split(&bytes);
    let wire = Wire::decode(&body(envelope));
    // Another valid capture, `by: 1_000_000`, sealed with a correct CRC: what
    // defeats the CRC alone. Plain, the forgery decodes and runs.
    let capture = codec::encode_value(&Offset { by: 1_000_000 }).unwrap();
    let forged = seal(&wire.with_capture(&capture));
    assert_eq!(
        serfn::from_bytes::<SerFn<i64, i64>>(&forged)
            .unwrap()
            .call(0),
        1_000_000
    );
    // Flagged as signed and given the original tag, it is refused.
    let mut forged_signed = forged;
    forged_signed[0] = FORMAT_VERSION | 0x80;
    let len = forged_signed.len();
    let checksum = crc32fast::hash(&forged_signed[..len - 4]);
    forged_signed[len - 4..].copy_from_slice(&checksum.to_le_bytes());
    forged_signed.extend_from_slice(tag);
    let reason = assert_unauthenticated(read(&forged_signed, &key(), CONTEXT), "forged");
    assert!(reason.contains("does not match"), "{reason}");
}

#[test]
fn the_wrong_key_is_unauthenticated() {
    let bytes = signed();
    for other in [
        Key::new(*b"0123456789abcdef0123456789abcdeF"),
        Key::new([0u8; 32]),
        Key::new(b""),
        Key::new(b"0123456789abcdef0123456789abcde"),
        Key::new([b'0'; 65]),
    ] {
        assert_unauthenticated(read(&bytes, &other, CONTEXT), &format!("{other:?}"));
    }
    // HMAC pads a short secret with zeros, so trailing zero bytes name the
    // same key (as `Key`'s documentation says): harmless, since whoever
    // can append them knows the key.
    let padded = Key::new(*b"0123456789abcdef0123456789abcdef\0\0");
    assert_eq!(read(&bytes, &padded, CONTEXT).unwrap().call(0), 5);
}

#[test]
fn an_entry_moved_to_another_task_or_job_is_unauthenticated() {
    let bytes = signed();
    for context in [
        &b"job:42/task:8"[..],
        b"job:43/task:7",
        b"job:42/task:7 ",
        b"job:42/task:",
        b"",
    ] {
        assert_unauthenticated(
            read(&bytes, &key(), context),
            &String::from_utf8_lossy(context),
        );
    }
}

#[test]
fn a_truncated_tag_is_unauthenticated() {
    let bytes = signed();
    for len in 0..bytes.len() {
        let reason = assert_unauthenticated(
            read(&bytes[..len], &key(), CONTEXT),
            &format!("{len} bytes"),
        );
        if len < TAG_LEN {
            assert!(reason.contains("too short"), "{len}: {reason}");
        }
    }
}

#[test]
fn an_unsigned_envelope_is_refused_by_the_signed_reader() {
    let plain = serfn::to_bytes(&SerFn::new(Offset { by: 5 })).unwrap();
    let reason = assert_unauthenticated(read(&plain, &key(), CONTEXT), "unsigned");
    assert!(reason.contains("unsigned"), "{reason}");
    // The tag stripped and the flag cleared: a valid plain envelope, which
    // the signed reader still refuses.
    let bytes = signed();
    let mut stripped = split(&bytes).0.to_vec();
    stripped[0] = FORMAT_VERSION;
    let stripped = seal(&body(&stripped));
    assert!(serfn::from_bytes::<SerFn<i64, i64>>(&stripped).is_ok());
    assert_unauthenticated(read(&stripped, &key(), CONTEXT), "stripped");
}

#[test]
fn a_signed_envelope_is_refused_by_the_plain_reader() {
    let bytes = signed();
    match serfn::from_bytes::<SerFn<i64, i64>>(&bytes) {
        Err(Error::Unauthenticated { reason }) => {
            assert!(reason.contains("from_bytes_signed"), "{reason}")
        }
        other => panic!("{:?}", other.map(|_| "a function")),
    }
    assert!(matches!(
        SerFn::<i64, i64>::from_bytes(&bytes),
        Err(Error::Unauthenticated { .. })
    ));
}

#[test]
fn an_oversized_input_is_refused_before_the_tag_is_computed() {
    let bytes = signed();
    let tight = Limits::default().max_bytes(bytes.len() - 1);
    // With the wrong key too: the size is the first thing checked.
    for key in [key(), Key::new(b"other")] {
        match tight.from_bytes_signed::<SerFn<i64, i64>>(&bytes, &key, CONTEXT) {
            Err(Error::TooLarge { len, limit }) => {
                assert_eq!((len, limit), (bytes.len() as u64, bytes.len() - 1))
            }
            other => panic!("{:?}", other.map(|_| "a function")),
        }
    }
    // A key relaxes no decode limit: a deep value from the key holder is
    // still too deep.
    let nested: Vec<Vec<Vec<Vec<u8>>>> = vec![vec![vec![vec![1]]]];
    let bytes = serfn::to_bytes_signed(&nested, &key(), CONTEXT).unwrap();
    assert!(matches!(
        Limits::default()
            .max_depth(2)
            .from_bytes_signed::<Vec<Vec<Vec<Vec<u8>>>>>(&bytes, &key(), CONTEXT),
        Err(Error::TooDeep { limit: 2 })
    ));
}

#[test]
fn sign_and_verify_any_bytes() {
    let result = codec::encode_value(&(7u32, "done")).unwrap();
    let signed = codec::sign(&key(), b"job:1/result:3", result.clone());
    assert_eq!(signed.len(), result.len() + TAG_LEN);
    assert_eq!(
        codec::verify(&key(), b"job:1/result:3", &signed).unwrap(),
        result
    );
    assert!(matches!(
        codec::verify(&key(), b"job:1/result:4", &signed),
        Err(Error::Unauthenticated { .. })
    ));
    // Empty bytes sign too: the tag alone.
    let empty = codec::sign(&key(), b"", Vec::new());
    assert_eq!(codec::verify(&key(), b"", &empty).unwrap(), b"");
}

#[test]
fn a_tag_made_for_bytes_never_verifies_as_an_envelope_or_back() {
    // The same message signed both ways: the labels keep the tags apart.
    let bytes = signed();
    let (envelope, _) = split(&bytes);
    let as_bytes = codec::sign(&key(), CONTEXT, envelope);
    assert_ne!(as_bytes, bytes);
    assert_unauthenticated(read(&as_bytes, &key(), CONTEXT), "bytes as envelope");
    assert!(codec::verify(&key(), CONTEXT, &bytes).is_err());
}

#[test]
fn the_key_is_never_printed() {
    let secret = "correct horse battery staple";
    let key = Key::new(secret);
    let shown = format!("{key:?} {key:#?}");
    assert!(
        !shown.contains(secret) && !shown.contains("horse"),
        "{shown}"
    );
    let error = read(&signed(), &key, CONTEXT).unwrap_err().to_string();
    assert!(error.starts_with("unauthenticated input: "), "{error}");
}

fn is_unauthenticated<T>(result: &serfn::Result<T>) -> bool {
    matches!(result, Err(Error::Unauthenticated { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_keys_contexts_and_values_round_trip_and_no_other_context_verifies(
        secret in proptest::collection::vec(any::<u8>(), 0..80),
        context in proptest::collection::vec(any::<u8>(), 0..40),
        other in proptest::collection::vec(any::<u8>(), 0..40),
        value in any::<(i64, String, Vec<Option<u16>>)>(),
        by in any::<i64>(),
    ) {
        prop_assume!(context != other);
        let key = Key::new(&secret);

        let bytes = serfn::to_bytes_signed(&value, &key, &context).unwrap();
        let back: (i64, String, Vec<Option<u16>>) =
            serfn::from_bytes_signed(&bytes, &key, &context).unwrap();
        prop_assert_eq!(&back, &value);
        let refused = serfn::from_bytes_signed::<(i64, String, Vec<Option<u16>>)>(&bytes, &key, &other);
        prop_assert!(is_unauthenticated(&refused));

        let f = serfn::to_bytes_signed(&SerFn::new(Offset { by }), &key, &context).unwrap();
        prop_assert_eq!(read(&f, &key, &context).unwrap().call(0), by);
        prop_assert!(is_unauthenticated(&read(&f, &key, &other)));

        let signed = codec::sign(&key, &context, codec::encode_value(&value).unwrap());
        prop_assert!(codec::verify(&key, &context, &signed).is_ok());
        prop_assert!(is_unauthenticated(&codec::verify(&key, &other, &signed)));
    }
}
