//! `/livez`, `/readyz` and `/healthz`: served without credentials, as kube-apiserver does.
//! Live: the process serves requests. Ready: this member knows a leader and the store answers.

use http::StatusCode;

use crate::api::Api;
use crate::http::{self as h, Response};

pub async fn check(api: &Api, path: &str) -> Response {
    if path == "/livez" {
        return h::respond(StatusCode::OK, "text/plain; charset=utf-8", "ok");
    }
    let status = api.store().status();
    if status.leader.is_some() {
        h::respond(StatusCode::OK, "text/plain; charset=utf-8", "ok")
    } else {
        h::respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "[-]store failed: this member knows no leader (the control plane may have lost its majority)\nreadyz check failed",
        )
    }
}
