//! The supervisor's transitions.

use super::*;

#[test]
fn transitions() {
    let lead = |term| Event::Leadership { leader: true, term };
    let follow = |term| Event::Leadership {
        leader: false,
        term,
    };
    assert_eq!(
        step(State::Idle, lead(3)),
        (State::Leading { term: 3 }, Action::Start { term: 3 })
    );
    assert_eq!(step(State::Idle, follow(3)), (State::Idle, Action::Nothing));
    assert_eq!(
        step(State::Leading { term: 3 }, lead(3)),
        (State::Leading { term: 3 }, Action::Nothing)
    );
    assert_eq!(
        step(State::Leading { term: 3 }, lead(5)),
        (
            State::Leading { term: 5 },
            Action::StopThenStart { term: 5 }
        )
    );
    assert_eq!(
        step(State::Leading { term: 3 }, follow(4)),
        (State::Idle, Action::Stop)
    );
    assert_eq!(
        step(State::Leading { term: 3 }, Event::FencedOut),
        (State::Idle, Action::Stop)
    );
    assert_eq!(
        step(State::Idle, Event::FencedOut),
        (State::Idle, Action::Nothing)
    );
    assert_eq!(
        step(State::Leading { term: 3 }, Event::Shutdown),
        (State::Stopped, Action::Stop)
    );
    assert_eq!(
        step(State::Stopped, lead(9)),
        (State::Stopped, Action::Nothing)
    );
}

#[test]
fn config_validation_reports_every_problem() {
    let config = Config {
        member_name: String::new(),
        cluster_cidr: "nope".into(),
        local_path: "relative".into(),
        ..Config::default()
    };
    assert_eq!(config.validate().len(), 3);
    assert!(Config::default().validate().is_empty());
}

#[tokio::test]
async fn fenced_clients_carry_the_term_header() {
    let config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap_or_default());
    assert!(fenced_client(&config, 7).is_ok());
}
