//! Tests for the WebSocket channel protocol helpers.

use super::*;

#[test]
fn negotiation_prefers_v5() {
    let offered = vec!["v4.channel.k8s.io, v5.channel.k8s.io".to_string()];
    assert_eq!(negotiate(&offered, &EXEC_PROTOCOLS), Some(V5));
    assert_eq!(
        negotiate(&["v4.channel.k8s.io".to_string()], &EXEC_PROTOCOLS),
        Some(V4)
    );
    assert_eq!(
        negotiate(&["channel.k8s.io".to_string()], &EXEC_PROTOCOLS),
        None
    );
    assert_eq!(
        negotiate(
            &["SPDY/3.1+portforward.k8s.io".to_string()],
            &[SPDY_PORT_FORWARD, V5, V4]
        ),
        Some(SPDY_PORT_FORWARD)
    );
}

#[test]
fn framing_round_trips() {
    let message = encode(STDOUT, b"hello");
    assert_eq!(message, b"\x01hello");
    assert_eq!(decode(&message), Some((STDOUT, &b"hello"[..])));
    assert_eq!(decode(&[CLOSE, STDIN]), Some((CLOSE, &[STDIN][..])));
    assert_eq!(decode(&[]), None);
    assert_eq!(port_prefix(2, 8080), vec![2, 0x90, 0x1f]);
}

#[test]
fn statuses_carry_the_exit_code() {
    let ok: serde_json::Value = serde_json::from_slice(&exit_status(0, &[])).expect("json");
    assert_eq!(ok["status"], "Success");
    let failed: serde_json::Value =
        serde_json::from_slice(&exit_status(3, &["sh".into()])).expect("json");
    assert_eq!(failed["status"], "Failure");
    assert_eq!(failed["reason"], "NonZeroExitCode");
    assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(failed["details"]["causes"][0]["message"], "3");
}

#[test]
fn resize_and_ports() {
    assert_eq!(
        parse_resize(br#"{"Width":120,"Height":40}"#),
        Some((120, 40))
    );
    assert_eq!(parse_resize(b"garbage"), None);
    assert_eq!(
        parse_ports(&["80,8080".into(), "9000".into()]),
        Ok(vec![80, 8080, 9000])
    );
    assert!(parse_ports(&["http".into()]).is_err());
    assert!(parse_ports(&[]).is_err());
    assert!(parse_ports(&["0".into()]).is_err());
}
