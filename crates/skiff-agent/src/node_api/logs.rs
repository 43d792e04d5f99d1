//! `GET /containerLogs/{ns}/{pod}/{container}`: a container's output as text/plain, streamed
//! (chunked) while following; `previous` reads the instance before the newest.

use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::{Body, State, find_container, flag, number, query};
use crate::runtime::LogOptions;

pub async fn serve(
    state: &State,
    req: &Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let q = query(req);
    let previous = flag(&q, "previous");
    let found = match find_container(state, ns, pod, container, previous).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let options = LogOptions {
        // Following a previous (dead) instance ends at once anyway.
        follow: flag(&q, "follow") && !previous,
        tail_lines: number(&q, "tailLines"),
        since_seconds: number(&q, "sinceSeconds"),
        timestamps: flag(&q, "timestamps"),
    };
    let limit = number(&q, "limitBytes")
        .filter(|n| *n > 0)
        .map(|n| n as usize);
    let mut sent = 0usize;
    let stream = state
        .runtime
        .logs(&found.id, &options)
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    let stream = stream
        .take_while(move |chunk| {
            let keep = match (limit, chunk) {
                (Some(limit), Ok(_)) => sent < limit,
                _ => true,
            };
            if let Ok(bytes) = chunk {
                sent += bytes.len();
            }
            futures::future::ready(keep)
        })
        .map(|chunk| chunk.map(Frame::data));
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}
