//! Probes: a pure per-container, per-kind state machine (when is the next run due, what does a
//! result change) and the verdicts it implies; [`prober`] runs them (exec through the runtime,
//! httpGet and tcpSocket against the pod from the host).
//!
//! Semantics as the kubelet's: nothing runs before `initialDelaySeconds`; a startup probe, when
//! present, must succeed before liveness and readiness run; results flip only after
//! `successThreshold` consecutive successes or `failureThreshold` consecutive failures;
//! readiness starts as not ready, liveness as alive, startup as not started.

pub mod prober;

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// The probe's timing fields with Kubernetes' defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Probe, kind: ProbeKind) -> Timing {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        let success = probe.success_threshold.unwrap_or(1).max(1) as u32;
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            // Liveness and startup probes must use 1.
            success_threshold: if kind == ProbeKind::Readiness {
                success
            } else {
                1
            },
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// One probe of one container instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub kind: ProbeKind,
    pub timing: Timing,
    /// The verdict so far: `true` = ready / alive / started.
    pub passing: bool,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    pub last_run: Option<Timestamp>,
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(t)
}

impl State {
    pub fn new(kind: ProbeKind, timing: Timing) -> State {
        State {
            kind,
            timing,
            passing: kind == ProbeKind::Liveness,
            consecutive_successes: 0,
            consecutive_failures: 0,
            last_run: None,
        }
    }

    /// When the probe should run next, for a container that started at `started_at`.
    pub fn next_due(&self, started_at: Timestamp) -> Timestamp {
        match self.last_run {
            None => add(started_at, self.timing.initial_delay),
            Some(last) => add(last, self.timing.period),
        }
    }

    /// Records a result; returns whether the verdict changed.
    pub fn record(&mut self, outcome: Outcome, at: Timestamp) -> bool {
        self.last_run = Some(at);
        let before = self.passing;
        match outcome {
            Outcome::Success => {
                self.consecutive_failures = 0;
                self.consecutive_successes = self.consecutive_successes.saturating_add(1);
                if self.consecutive_successes >= self.timing.success_threshold {
                    self.passing = true;
                }
            }
            Outcome::Failure => {
                self.consecutive_successes = 0;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures >= self.timing.failure_threshold {
                    self.passing = false;
                }
            }
        }
        before != self.passing
    }

    /// A liveness or startup probe that failed past its threshold: restart the container.
    pub fn wants_restart(&self) -> bool {
        match self.kind {
            ProbeKind::Liveness => !self.passing,
            ProbeKind::Startup => {
                !self.passing && self.consecutive_failures >= self.timing.failure_threshold
            }
            ProbeKind::Readiness => false,
        }
    }
}

/// The probes of one container instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerProbes {
    pub startup: Option<State>,
    pub liveness: Option<State>,
    pub readiness: Option<State>,
}

impl ContainerProbes {
    pub fn new(container: &k8s_openapi::api::core::v1::Container) -> ContainerProbes {
        let make =
            |p: &Option<Probe>, kind| p.as_ref().map(|p| State::new(kind, Timing::of(p, kind)));
        ContainerProbes {
            startup: make(&container.startup_probe, ProbeKind::Startup),
            liveness: make(&container.liveness_probe, ProbeKind::Liveness),
            readiness: make(&container.readiness_probe, ProbeKind::Readiness),
        }
    }

    pub fn started(&self) -> bool {
        self.startup.as_ref().map(|s| s.passing).unwrap_or(true)
    }

    /// The probes due at `now`, in order (startup gates the others).
    pub fn due(&self, started_at: Timestamp, now: Timestamp) -> Vec<ProbeKind> {
        let mut due = Vec::new();
        if let Some(s) = &self.startup
            && !s.passing
        {
            if s.next_due(started_at) <= now && !s.wants_restart() {
                due.push(ProbeKind::Startup);
            }
            return due;
        }
        for state in [&self.liveness, &self.readiness].into_iter().flatten() {
            if state.next_due(started_at) <= now {
                due.push(state.kind);
            }
        }
        due
    }

    /// The earliest time any probe becomes due.
    pub fn next_wake(&self, started_at: Timestamp) -> Option<Timestamp> {
        if let Some(s) = &self.startup
            && !s.passing
        {
            return (!s.wants_restart()).then(|| s.next_due(started_at));
        }
        [&self.liveness, &self.readiness]
            .into_iter()
            .flatten()
            .map(|s| s.next_due(started_at))
            .min()
    }

    pub fn get_mut(&mut self, kind: ProbeKind) -> Option<&mut State> {
        match kind {
            ProbeKind::Startup => self.startup.as_mut(),
            ProbeKind::Liveness => self.liveness.as_mut(),
            ProbeKind::Readiness => self.readiness.as_mut(),
        }
    }

    pub fn verdicts(&self) -> crate::plan::ProbeVerdicts {
        let started = self.started();
        crate::plan::ProbeVerdicts {
            started,
            ready: started && self.readiness.as_ref().map(|r| r.passing).unwrap_or(true),
            kill: self
                .liveness
                .as_ref()
                .map(State::wants_restart)
                .unwrap_or(false)
                || self
                    .startup
                    .as_ref()
                    .map(State::wants_restart)
                    .unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests;
