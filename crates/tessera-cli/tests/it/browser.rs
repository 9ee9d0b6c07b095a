//! Real-browser tests: headless Chromium driven over WebDriver (`chromedriver` + `fantoccini`).
//!
//! [`Browser::start`] runs a private `chromedriver` (on a port it picks itself) with a fresh
//! Chromium profile; dropping the [`Browser`] ends the WebDriver session (which quits Chromium) and
//! kills `chromedriver`. [`RedirectCatcher`] is a client's redirect URI: it records the query of
//! every hit on `/callback`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian: `chromium chromium-driver`)
//! browser tests skip themselves with a banner on stderr, or fail when
//! `TESSERA_TEST_BROWSER=required` (as `.ci/run` sets).

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::extract::Query;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::sync::{mpsc, Mutex};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// `TESSERA_TEST_BROWSER=required` turns a missing browser into a test failure.
const REQUIRED_VAR: &str = "TESSERA_TEST_BROWSER";

/// Starting `chromedriver` and opening a session (which launches Chromium).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Any one WebDriver command (navigation, typing, clicking...).
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// Waiting for an element to appear.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headless Chromium under a private `chromedriver`. Fields drop in order: the session first, then
/// `chromedriver`, then the profile directory.
pub struct Browser {
    /// The WebDriver session, for anything the helpers below do not cover.
    pub client: Client,
    _driver: Driver,
    profile: tempfile::TempDir,
}

impl Browser {
    /// A fresh browser, or `None` (after a banner on stderr) when Chromium or chromedriver is not
    /// installed. Panics instead when `TESSERA_TEST_BROWSER=required`.
    pub async fn start() -> Option<Browser> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|path| !Path::new(path).exists())
            .collect();
        if missing.is_empty() {
            return Some(Self::launch().await);
        }
        let missing = missing.join(" and ");
        if std::env::var(REQUIRED_VAR).as_deref() == Ok("required") {
            panic!(
                "{REQUIRED_VAR}=required, but {missing} is missing: \
                 apt-get install -y chromium chromium-driver"
            );
        }
        // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! Browser tests SKIPPED ({test}): chromium/chromium-driver not installed ({missing} missing; \
             apt-get install -y chromium chromium-driver); .ci/run installs them !!!\n"
        );
        None
    }

    async fn launch() -> Browser {
        let profile = tempfile::Builder::new().prefix("tessera-chromium-").tempdir().unwrap();
        let log = profile.path().join("chromedriver.log");
        let user_data_dir = profile.path().join("chromium");
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            // Chromium inherits these: its crash database and dconf stay out of $HOME.
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .env("XDG_CACHE_HOME", profile.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut driver = Driver {
            child,
            port: 0,
            session: None,
            user_data_dir: user_data_dir.clone(),
        };

        // chromedriver picks a free port and says which: "... started successfully on port 12345."
        // Keep draining its stdout afterwards so it can never block on a full pipe.
        let (port_tx, port_rx) = tokio::sync::oneshot::channel::<u16>();
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let port = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim().trim_end_matches('.').parse::<u16>().ok());
                if let Some(port) = port {
                    if let Some(tx) = port_tx.take() {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        driver.port = match tokio::time::timeout(START_TIMEOUT, port_rx).await {
            Ok(Ok(port)) => port,
            Ok(Err(_)) => panic!("chromedriver exited before it was ready{}", log_tail(&log)),
            Err(_) => panic!("chromedriver not ready within {START_TIMEOUT:?}{}", log_tail(&log)),
        };

        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "implicit": 0, "pageLoad": STEP_TIMEOUT.as_millis(), "script": STEP_TIMEOUT.as_millis() },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-proxy-server",
                    "--password-store=basic",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", user_data_dir.display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let connect = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await;
        let client = match connect {
            Ok(client) => client,
            Err(e) => panic!("cannot open a Chromium session: {e}{}", log_tail(&log)),
        };
        driver.session = client.session_id().await.ok().flatten();
        Browser {
            client,
            _driver: driver,
            profile,
        }
    }

    /// Loads `url` and waits for the page to finish loading.
    pub async fn goto(&self, url: &str) {
        self.step(format!("goto {url}"), self.client.goto(url)).await;
    }

    /// The first element matching the CSS selector `css`, waiting for it to appear.
    pub async fn wait_for(&self, css: &str) -> Element {
        let found = self
            .client
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => panic!(
                "browser: no element {css:?} within {ELEMENT_TIMEOUT:?}: {e}{}",
                self.context().await
            ),
        }
    }

    /// Replaces the value of the input matching `css` by typing `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        self.step(format!("clear {css:?}"), element.clear()).await;
        self.step(format!("type into {css:?}"), element.send_keys(text)).await;
    }

    /// Clicks the element matching `css` (waiting for any navigation it starts).
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        self.step(format!("click {css:?}"), element.click()).await;
    }

    pub async fn current_url(&self) -> String {
        self.step("current URL", self.client.current_url()).await.to_string()
    }

    pub async fn page_source(&self) -> String {
        self.step("page source", self.client.source()).await
    }

    /// Runs one WebDriver command, failing the test with context if it errs or hangs.
    async fn step<T, E: Display>(&self, what: impl Display, command: impl Future<Output = Result<T, E>>) -> T {
        match tokio::time::timeout(STEP_TIMEOUT, command).await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("browser: {what} failed: {e}{}", self.context().await),
            Err(_) => panic!("browser: {what} took longer than {STEP_TIMEOUT:?}"),
        }
    }

    /// Where the browser is and what it shows, for failure messages (best effort).
    async fn context(&self) -> String {
        let within = Duration::from_secs(5);
        let url = match tokio::time::timeout(within, self.client.current_url()).await {
            Ok(Ok(url)) => url.to_string(),
            _ => "?".to_owned(),
        };
        let source = match tokio::time::timeout(within, self.client.source()).await {
            Ok(Ok(source)) => source.chars().take(2000).collect(),
            _ => "?".to_owned(),
        };
        format!("\n  at: {url}\n  page: {source}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Shown with the failing test's output.
            eprintln!(
                "chromedriver log:{}",
                log_tail(&self.profile.path().join("chromedriver.log"))
            );
        }
    }
}

/// The `chromedriver` process; dropping it ends the session (Chromium quits) and kills it.
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
    user_data_dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Synchronous on purpose: no runtime is guaranteed to be left to run async clean-up on.
        if let Some(session) = &self.session {
            delete_session(self.port, session);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Killing chromedriver leaves its Chromium running, so if the session did not end (no
        // session, or chromedriver stuck), kill the processes of this browser's profile.
        kill_chromium(&self.user_data_dir);
    }
}

/// `DELETE /session/{id}`: chromedriver quits Chromium, then answers.
fn delete_session(port: u16, session: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // The first byte of the answer means Chromium is gone.
        let _ = stream.read(&mut [0; 256]);
    }
}

/// Kills the live processes whose command line names `user_data_dir` (ours alone: it is a fresh
/// temporary directory) and waits up to two seconds for them to go.
fn kill_chromium(user_data_dir: &Path) {
    let flag = format!("--user-data-dir={}", user_data_dir.display());
    let alive = || -> Vec<String> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let pid = entry.file_name().into_string().ok()?;
                pid.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
                // Empty for zombies, which are dead already.
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                cmdline
                    .split(|&b| b == 0)
                    .any(|arg| arg == flag.as_bytes())
                    .then_some(pid)
            })
            .collect()
    };
    let pids = alive();
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -KILL {} 2>/dev/null", pids.join(" ")))
        .status();
    for _ in 0..40 {
        if alive().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last lines of chromedriver's log, for failure messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(25)..].join("\n  ");
    format!("\n  chromedriver log ({}):\n  {tail}", log.display())
}

/// A client's redirect URI on `127.0.0.1`: records the query parameters of every hit on `/callback`.
pub struct RedirectCatcher {
    addr: SocketAddr,
    hits: Mutex<mpsc::UnboundedReceiver<HashMap<String, String>>>,
    server: tokio::task::JoinHandle<()>,
}

/// What the browser shows after a redirect reached the catcher.
pub const CALLBACK_PAGE: &str =
    "<!doctype html><html><head><title>callback</title></head><body><h1 id=\"callback\">Redirect received</h1></body></html>";

impl RedirectCatcher {
    pub async fn start() -> RedirectCatcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = Router::new().route(
            "/callback",
            get(move |Query(query): Query<HashMap<String, String>>| {
                let _ = tx.send(query);
                async { Html(CALLBACK_PAGE) }
            }),
        );
        let (addr, server) = serve(app).await;
        RedirectCatcher {
            addr,
            hits: Mutex::new(rx),
            server,
        }
    }

    /// `http://127.0.0.1:<port>/callback`
    pub fn redirect_uri(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// The query parameters of the next hit on `/callback` (in order of arrival); panics when none
    /// comes within `timeout`.
    pub async fn next_hit(&self, timeout: Duration) -> HashMap<String, String> {
        let mut hits = self.hits.lock().await;
        match tokio::time::timeout(timeout, hits.recv()).await {
            Ok(Some(query)) => query,
            Ok(None) => panic!("redirect catcher stopped"),
            Err(_) => panic!("no redirect to {} within {timeout:?}", self.redirect_uri()),
        }
    }
}

impl Drop for RedirectCatcher {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves `app` on `127.0.0.1:0` until the returned task is aborted.
async fn serve(app: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

/// The harness itself, against a login-like page of its own: form fill, submit, 303 to a
/// redirect URI, query captured.
#[tokio::test]
async fn browser_harness_works() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let catcher = RedirectCatcher::start().await;
    let redirect_uri = catcher.redirect_uri();
    let page = r#"<!doctype html><html><head><title>Sign in</title></head><body>
        <form method="post" action="/login">
          <input type="hidden" name="state" value="s-123">
          <label>Username <input id="username" name="username"></label>
          <label>Password <input id="password" name="password" type="password"></label>
          <button id="sign-in" type="submit">Sign in</button>
        </form></body></html>"#;
    // The form body is already a query string: pass it on to the redirect URI, as a 303.
    let app = Router::new().route(
        "/login",
        get(move || async move { Html(page) })
            .post(move |body: String| async move { axum::response::Redirect::to(&format!("{redirect_uri}?{body}")) }),
    );
    let (addr, server) = serve(app).await;

    browser.goto(&format!("http://{addr}/login")).await;
    browser.fill("#username", "alice").await;
    browser.fill("#password", "correct horse & battery").await;
    browser.click("#sign-in").await;

    let hit = catcher.next_hit(Duration::from_secs(10)).await;
    assert_eq!(hit.get("username").map(String::as_str), Some("alice"));
    assert_eq!(hit.get("password").map(String::as_str), Some("correct horse & battery"));
    assert_eq!(hit.get("state").map(String::as_str), Some("s-123"));
    browser.wait_for("#callback").await;
    let url = browser.current_url().await;
    assert!(url.starts_with(&catcher.redirect_uri()), "ended at {url}");
    assert!(browser.page_source().await.contains("Redirect received"));
    server.abort();
}
