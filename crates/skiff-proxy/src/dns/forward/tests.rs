//! Tests for the forwarding cache: TTLs, negative answers, expiry, eviction.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Cache, Key, cache_ttl};

fn name(s: &str) -> Name {
    Name::from_str(s).expect("name")
}

fn answer(ttls: &[u32]) -> Message {
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.queries
        .push(Query::query(name("example.com."), RecordType::A));
    for (i, ttl) in ttls.iter().enumerate() {
        let ip = Ipv4Addr::new(192, 0, 2, u8::try_from(i + 1).expect("small"));
        m.answers.push(Record::from_rdata(
            name("example.com."),
            *ttl,
            RData::A(A(ip)),
        ));
    }
    m
}

fn key() -> Key {
    Key::of(&Query::query(name("Example.COM."), RecordType::A))
}

#[test]
fn ttl_is_the_smallest_answer_ttl_or_the_soa_minimum() {
    assert_eq!(cache_ttl(&answer(&[300, 60, 120])), Duration::from_secs(60));
    let mut negative = answer(&[]);
    negative.metadata.response_code = ResponseCode::NXDomain;
    let soa = SOA::new(
        name("ns.example.com."),
        name("h.example.com."),
        1,
        1,
        1,
        1,
        45,
    );
    negative.authorities.push(Record::from_rdata(
        name("example.com."),
        900,
        RData::SOA(soa),
    ));
    assert_eq!(cache_ttl(&negative), Duration::from_secs(45));
    assert_eq!(cache_ttl(&answer(&[])), Duration::from_secs(30));
}

#[test]
fn cached_answers_age_and_expire() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10, Duration::from_secs(300));
    cache.put(key(), &answer(&[60]), t0);
    let hit = cache
        .get(&key(), t0 + Duration::from_secs(20))
        .expect("cached");
    assert_eq!(hit.answers[0].ttl, 40);
    assert!(cache.get(&key(), t0 + Duration::from_secs(60)).is_none());
    assert!(cache.is_empty());
}

#[test]
fn keys_ignore_case_and_ttl_is_capped() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10, Duration::from_secs(10));
    cache.put(
        Key::of(&Query::query(name("example.com."), RecordType::A)),
        &answer(&[3600]),
        t0,
    );
    assert!(cache.get(&key(), t0 + Duration::from_secs(9)).is_some());
    assert!(cache.get(&key(), t0 + Duration::from_secs(10)).is_none());
}

#[test]
fn failures_and_truncated_answers_are_not_cached() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10, Duration::from_secs(300));
    let mut failed = answer(&[60]);
    failed.metadata.response_code = ResponseCode::ServFail;
    cache.put(key(), &failed, t0);
    let mut truncated = answer(&[60]);
    truncated.metadata.truncation = true;
    cache.put(key(), &truncated, t0);
    assert!(cache.is_empty());
}

#[test]
fn a_full_cache_evicts_the_entry_closest_to_expiry() {
    let t0 = Instant::now();
    let mut cache = Cache::new(2, Duration::from_secs(300));
    let k = |n: &str| Key::of(&Query::query(name(n), RecordType::A));
    cache.put(k("a.example."), &answer(&[100]), t0);
    cache.put(k("b.example."), &answer(&[10]), t0);
    cache.put(k("c.example."), &answer(&[50]), t0);
    assert_eq!(cache.len(), 2);
    assert!(cache.get(&k("b.example."), t0).is_none());
    assert!(cache.get(&k("a.example."), t0).is_some());
    assert!(cache.get(&k("c.example."), t0).is_some());
}
