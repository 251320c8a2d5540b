//! A mock OpenID provider for tests (feature `test-support`): discovery and JWKS over plain
//! HTTP on 127.0.0.1, with key rotation, `Cache-Control` and outages under the test's control.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

struct State {
    jwks: String,
    cache_control: Option<String>,
    down: bool,
    /// While set, requests are read, counted and never answered.
    hanging: bool,
    held: Vec<TcpStream>,
    discovery_hits: u64,
    jwks_hits: u64,
}

/// The provider; stops when dropped.
pub struct MockProvider {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Path of the JWKS on the mock provider.
pub const MOCK_JWKS_PATH: &str = "/discovery/keys";

impl MockProvider {
    /// Serves `jwks` until dropped.
    pub fn start(jwks: &Value) -> MockProvider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock provider");
        let addr = listener.local_addr().expect("mock provider address");
        let state = Arc::new(Mutex::new(State {
            jwks: jwks.to_string(),
            cache_control: None,
            down: false,
            hanging: false,
            held: Vec::new(),
            discovery_hits: 0,
            jwks_hits: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        serve(conn, addr, &state);
                    }
                }
            })
        };
        MockProvider {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The issuer URL, `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn jwks_url(&self) -> String {
        format!("{}{MOCK_JWKS_PATH}", self.issuer())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes another key set (rotation).
    pub fn set_jwks(&self, jwks: &Value) {
        self.state().jwks = jwks.to_string();
    }

    /// The `Cache-Control` header sent with the JWKS (none by default).
    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state().cache_control = value.map(str::to_string);
    }

    /// While down, every request is answered 503.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// While hanging, every request is read and never answered (the connection stays open
    /// until the provider stops hanging or is dropped): a provider that accepts and stalls.
    pub fn set_hanging(&self, hanging: bool) {
        let mut s = self.state();
        s.hanging = hanging;
        if !hanging {
            s.held.clear();
        }
    }

    /// Requests for the discovery document so far (answered or not).
    pub fn discovery_hits(&self) -> u64 {
        self.state().discovery_hits
    }

    /// Requests for the JWKS so far (answered or not).
    pub fn jwks_hits(&self) -> u64 {
        self.state().jwks_hits
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, addr: SocketAddr, state: &Mutex<State>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let (status, body, cache_control) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let down = s.down;
        let answer = match path.as_str() {
            // Any issuer path: `{issuer}/.well-known/openid-configuration` for an issuer such
            // as `http://127.0.0.1:PORT/tenant/v2.0`.
            p if p.ends_with("/.well-known/openid-configuration") => {
                s.discovery_hits += 1;
                let doc = json!({
                    "issuer": format!("http://{addr}"),
                    "jwks_uri": format!("http://{addr}{MOCK_JWKS_PATH}"),
                    "id_token_signing_alg_values_supported": ["RS256"],
                });
                (200, doc.to_string(), None)
            }
            MOCK_JWKS_PATH => {
                s.jwks_hits += 1;
                (200, s.jwks.clone(), s.cache_control.clone())
            }
            _ => (404, "{}".to_string(), None),
        };
        if s.hanging {
            s.held.push(conn);
            return;
        }
        if down {
            (503, "{}".to_string(), None)
        } else {
            answer
        }
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let mut resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(cc) = cache_control {
        resp.push_str(&format!("Cache-Control: {cc}\r\n"));
    }
    resp.push_str("\r\n");
    resp.push_str(&body);
    let _ = conn.write_all(resp.as_bytes());
}
