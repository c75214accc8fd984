//! Cross-origin requests from web pages (CORS), for the origins `cors_origins` names: a
//! preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, before the
//! token check (browsers send it without credentials), and an allowed origin's answers carry
//! `Access-Control-Allow-Origin`, as llama-server's do. With no origin configured (the
//! default) no page of another origin can read an answer: insightd often runs without a token
//! on loopback, where any page the node's browser opens could otherwise call it.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The methods a preflight allows (llama-server's list).
const METHODS: &str = "GET, POST, DELETE, OPTIONS";

/// Whether `origin` is one of `allowed`: `*` (any origin), `localhost` (`http(s)://localhost`,
/// `127.0.0.1` or `[::1]`, any port) or an origin spelled exactly.
pub fn allows(allowed: &[String], origin: &str) -> bool {
    allowed.iter().any(|entry| match entry.as_str() {
        "*" => true,
        "localhost" => is_local(origin),
        exact => exact == origin,
    })
}

fn is_local(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    ["localhost", "127.0.0.1", "[::1]"].iter().any(|host| {
        rest.strip_prefix(host).is_some_and(|port| {
            port.is_empty()
                || port
                    .strip_prefix(':')
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

/// The middleware (outside the token check).
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| allows(&state.config.cors_origins, o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        // Answered whatever the origin; only an allowed one gets the headers that let the
        // browser go on.
        let mut resp = StatusCode::OK.into_response();
        if origin.is_some() {
            let headers = resp.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(METHODS),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("*"),
            );
        }
        resp
    } else {
        next.run(req).await
    };
    if let Some(origin) = origin {
        allow(resp.headers_mut(), origin);
    }
    resp
}

fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::allows;

    #[test]
    fn origins_match_as_configured() {
        let local = ["localhost".to_string()];
        for ok in [
            "http://localhost",
            "http://localhost:8080",
            "https://127.0.0.1:3000",
            "http://[::1]",
        ] {
            assert!(allows(&local, ok), "{ok}");
        }
        for bad in [
            "http://localhost.evil.com",
            "http://notlocalhost",
            "http://localhost:",
            "http://localhost:80x",
            "localhost",
            "http://evil.com",
        ] {
            assert!(!allows(&local, bad), "{bad}");
        }
        let exact = ["https://grafana.example".to_string()];
        assert!(allows(&exact, "https://grafana.example"));
        assert!(!allows(&exact, "https://grafana.example:444"));
        assert!(allows(&["*".to_string()], "web.mydomain.fr"));
        assert!(!allows(&[], "http://localhost"));
    }
}
