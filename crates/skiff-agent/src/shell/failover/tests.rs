//! Tests for the failover's decisions: which server the next request goes to after each
//! outcome, which streams end, and what counts as a watch. No sockets, no runtime.

use super::*;

/// Replays `(server the request went to, outcome)` and returns the current server after each.
fn replay(servers: usize, steps: &[(usize, Outcome)]) -> Vec<usize> {
    let mut rotation = Rotation::new(servers);
    steps
        .iter()
        .map(|&(server, outcome)| {
            rotation.observe(server, outcome);
            rotation.current()
        })
        .collect()
}

#[test]
fn only_failures_and_unavailable_answers_move_on() {
    let cases = [
        (Outcome::Answered(200), false),
        (Outcome::Answered(201), false),
        (Outcome::Answered(404), false),
        // A conflict or a refusal is the server's answer: another server would say the same.
        (Outcome::Answered(409), false),
        (Outcome::Answered(429), false),
        (Outcome::Answered(500), false),
        (Outcome::Answered(503), true),
        (Outcome::Answered(504), true),
        (Outcome::Failed, true),
        (Outcome::TimedOut, true),
    ];
    for (outcome, moves) in cases {
        let mut rotation = Rotation::new(3);
        assert_eq!(rotation.observe(0, outcome), moves, "{outcome:?}");
        assert_eq!(rotation.current(), usize::from(moves), "{outcome:?}");
        assert_eq!(rotation.switches(), u64::from(moves), "{outcome:?}");
    }
}

#[test]
fn the_next_server_is_the_next_in_order_wrapping_around() {
    let steps = [
        (0, Outcome::Failed),
        (1, Outcome::TimedOut),
        (2, Outcome::Answered(504)),
        (0, Outcome::Answered(200)),
        (0, Outcome::Failed),
    ];
    assert_eq!(replay(3, &steps), vec![1, 2, 0, 0, 1]);
}

#[test]
fn outcomes_from_a_server_already_left_change_nothing() {
    // Three requests were in flight at server 0 when it died: the first failure moves to 1,
    // the two later ones must not push the rotation on to 2 and back to 0.
    let steps = [
        (0, Outcome::Failed),
        (0, Outcome::Failed),
        (0, Outcome::TimedOut),
        (1, Outcome::Answered(200)),
    ];
    assert_eq!(replay(3, &steps), vec![1, 1, 1, 1]);
    let mut rotation = Rotation::new(3);
    for &(server, outcome) in &steps {
        rotation.observe(server, outcome);
    }
    assert_eq!(rotation.switches(), 1);
}

#[test]
fn a_single_server_is_kept_whatever_happens() {
    let steps = [
        (0, Outcome::Failed),
        (0, Outcome::TimedOut),
        (0, Outcome::Answered(503)),
    ];
    assert_eq!(replay(1, &steps), vec![0, 0, 0]);
    assert_eq!(replay(0, &steps), vec![0, 0, 0]);
}

#[test]
fn streams_end_when_their_server_is_left() {
    let mut rotation = Rotation::new(3);
    assert!(!rotation.abandoned(0));
    assert!(rotation.abandoned(1));
    rotation.observe(0, Outcome::TimedOut);
    assert!(rotation.abandoned(0), "the rotation left server 0");
    assert!(!rotation.abandoned(1));
}

#[test]
fn watches_are_told_by_their_query() {
    let cases = [
        ("/api/v1/pods?watch=true&resourceVersion=12", true),
        (
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&watch=1",
            true,
        ),
        ("/api/v1/pods?watch=false", false),
        ("/api/v1/pods?allowWatchBookmarks=true", false),
        ("/api/v1/pods", false),
        (
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            false,
        ),
    ];
    for (uri, watch) in cases {
        let uri: http::Uri = uri.parse().expect("a valid test URI");
        assert_eq!(is_watch(&uri), watch, "{uri}");
    }
}
