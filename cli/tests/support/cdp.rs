//! A small synchronous Chrome DevTools Protocol client: the browser tests
//! drive a real headless Chromium with it, with no websocket crate and
//! nothing downloaded at run time.
//!
//! Chromium runs with `--remote-debugging-pipe`: it reads commands from fd 3
//! and writes answers and events to fd 4, each message one JSON object
//! followed by a NUL byte. A reader thread splits that stream and hands each
//! answer to the caller waiting for its id and each event to the page (the
//! DevTools session) it belongs to. Every wait has a timeout ([`TIMEOUT`]),
//! so a hung or crashed browser fails the test with a message, never hangs CI.
//!
//! Chromium leads a process group of its own, killed as a whole (browser,
//! renderer, GPU and utility processes) when the [`Browser`] is dropped; if
//! the test process dies instead, the pipe closes and Chromium exits by itself.

#![allow(dead_code, reason = "each test file uses only part of the client")]

use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest any one command, page load or awaited event may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

const FLAGS: &[&str] = &[
    "--headless=new",
    "--remote-debugging-pipe",
    // Containers and CI run as root, where Chromium's sandbox refuses to start.
    "--no-sandbox",
    "--disable-gpu",
    // Docker's 64 MiB /dev/shm is too small for the renderer's shared memory.
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--window-size=1280,900",
];

/// The Chromium binary: `CHURN_CHROMIUM`, else `chromium` on `PATH`; panics
/// with how to install it when there is neither (the tests never skip).
pub fn chromium_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHURN_CHROMIUM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser tests drive a real headless Chromium and none was found: \
                 `chromium` is not on PATH and CHURN_CHROMIUM is not set. Install it \
                 (Debian/Ubuntu, as root: `apt-get install chromium`), or run \
                 scripts/test.sh, which installs it when missing, or set CHURN_CHROMIUM \
                 to a Chromium or Chrome binary"
            )
        })
}

/// A running headless Chromium, killed (with all its processes) on drop.
pub struct Browser {
    conn: Arc<Connection>,
    child: Child,
    /// The profile (`--user-data-dir`) and Chromium's stderr log; removed on
    /// drop, after the browser is gone (fields drop after `Drop::drop`).
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (see [`chromium_binary`]) and checks that it answers
    /// on the DevTools pipe.
    pub fn launch() -> Browser {
        let binary = chromium_binary();
        let profile = tempfile::Builder::new()
            .prefix("churn-chromium-")
            .tempdir()
            .expect("a temporary directory for the browser profile");
        let stderr_log = profile.path().join("chromium-stderr.log");
        let stderr = File::create(&stderr_log).expect("chromium's stderr log");
        // std's pipes are close-on-exec: only the dup2'ed copies reach Chromium.
        let (child_reads, parent_writes) = io::pipe().expect("a pipe for DevTools commands");
        let (parent_reads, child_writes) = io::pipe().expect("a pipe for DevTools events");
        let (commands_fd, events_fd) = (child_reads.as_raw_fd(), child_writes.as_raw_fd());

        let mut command = Command::new(&binary);
        command
            .args(FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: the closure runs in the forked child before exec. It only
        // makes async-signal-safe system calls (fcntl, dup2, close, setpgid)
        // on two descriptors that stay open in the parent until spawn
        // returns, and neither allocates nor takes locks.
        unsafe {
            command.pre_exec(move || pipes_onto_fds_3_and_4(commands_fd, events_fd));
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e}. Install Chromium (`apt-get install chromium`) \
                 or set CHURN_CHROMIUM to a Chromium binary",
                binary.display()
            )
        });
        // Chromium has its copies; ours would keep the pipe open after it exits.
        drop(child_reads);
        drop(child_writes);

        let conn = Arc::new(Connection {
            writer: Mutex::new(parent_writes),
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            stderr_log,
        });
        let reader = Arc::clone(&conn);
        std::thread::Builder::new()
            .name("cdp-reader".into())
            .spawn(move || read_messages(parent_reads, &reader))
            .expect("the DevTools reader thread");
        let browser = Browser {
            conn,
            child,
            _profile: profile,
        };
        if let Err(e) = browser
            .conn
            .call(None, "Browser.getVersion", json!({}), TIMEOUT)
        {
            panic!(
                "{} started but does not answer on the DevTools pipe: {e}",
                binary.display()
            );
        }
        browser
    }

    /// One browser-level command; panics on an error answer or a timeout.
    #[track_caller]
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.conn
            .call(None, method, params, TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A new tab at `about:blank` with the Page, Runtime and Log domains on,
    /// so its console messages, exceptions and CSP violations are collected.
    #[track_caller]
    pub fn new_page(&self) -> Page {
        let created = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target = created["targetId"]
            .as_str()
            .unwrap_or_else(|| panic!("Target.createTarget answered {created}"))
            .to_string();
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Target.attachToTarget answered {attached}"))
            .to_string();
        let (events_tx, events) = mpsc::channel();
        lock(&self.conn.state)
            .sessions
            .insert(session.clone(), events_tx);
        let page = Page {
            conn: Arc::clone(&self.conn),
            session,
            target,
            events,
            messages: Vec::new(),
        };
        for enable in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(enable, json!({}));
        }
        // Screenshots as wide as the viewport, with no scrollbar's strip.
        page.call("Emulation.setScrollbarsHidden", json!({ "hidden": true }));
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(group) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: a negative pid signals the process group that Chromium
            // leads (setpgid in pre_exec). Its leader is not reaped yet (that
            // is the wait below), so the group id cannot have been reused.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// In the forked child: `commands` becomes fd 3 and `events` fd 4 (both kept
/// across exec), and the child leads a new process group.
fn pipes_onto_fds_3_and_4(commands: RawFd, events: RawFd) -> io::Result<()> {
    fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }
    // Either end may itself be fd 3 or 4 (and dup2 onto its own number would
    // keep close-on-exec), so both first move above them. F_DUPFD's copies are
    // not close-on-exec: they are closed once dup2'ed.
    // SAFETY: duplicates a descriptor this process owns; no memory involved.
    let commands = check(unsafe { libc::fcntl(commands, libc::F_DUPFD, 10) })?;
    // SAFETY: as above.
    let events = check(unsafe { libc::fcntl(events, libc::F_DUPFD, 10) })?;
    // SAFETY: dup2 onto fixed numbers; whatever they held in the child is
    // replaced, which is the point (the copies above are safe from it).
    check(unsafe { libc::dup2(commands, 3) })?;
    // SAFETY: as above.
    check(unsafe { libc::dup2(events, 4) })?;
    // SAFETY: closes the two temporary copies made above, nothing else.
    check(unsafe { libc::close(commands) })?;
    // SAFETY: as above.
    check(unsafe { libc::close(events) })?;
    // SAFETY: moves only this (child) process into a group of its own.
    check(unsafe { libc::setpgid(0, 0) })?;
    Ok(())
}

/// The pipe to Chromium and who is waiting for what from it.
struct Connection {
    writer: Mutex<io::PipeWriter>,
    state: Mutex<State>,
    next_id: AtomicU64,
    stderr_log: PathBuf,
}

#[derive(Default)]
struct State {
    /// Command id -> the caller waiting for its answer.
    pending: HashMap<u64, Sender<Value>>,
    /// DevTools session id -> that page's event queue.
    sessions: HashMap<String, Sender<Value>>,
    /// Why the pipe ended, once it has.
    closed: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Connection {
    /// Sends one command and waits at most `timeout` for its answer.
    fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer_rx) = mpsc::channel();
        {
            let mut state = lock(&self.state);
            if let Some(why) = &state.closed {
                return Err(format!("{method}: {why}{}", self.stderr_tail()));
            }
            state.pending.insert(id, answer_tx);
        }
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("a JSON command");
        bytes.push(0);
        if let Err(e) = lock(&self.writer).write_all(&bytes) {
            lock(&self.state).pending.remove(&id);
            return Err(format!(
                "sending {method} to chromium failed: {e}{}",
                self.stderr_tail()
            ));
        }
        match answer_rx.recv_timeout(timeout) {
            Ok(answer) => match answer.get("error") {
                Some(error) => Err(format!("{method} failed: {error}")),
                None => Ok(answer.get("result").cloned().unwrap_or(Value::Null)),
            },
            Err(RecvTimeoutError::Timeout) => {
                lock(&self.state).pending.remove(&id);
                Err(format!(
                    "chromium did not answer {method} within {} s{}",
                    timeout.as_secs(),
                    self.stderr_tail()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => Err(format!(
                "{method}: {}{}",
                self.closed_reason(),
                self.stderr_tail()
            )),
        }
    }

    /// Routes one message from Chromium: an answer to its caller, an event
    /// to its page's queue.
    fn dispatch(&self, raw: &[u8]) {
        let Ok(message) = serde_json::from_slice::<Value>(raw) else {
            return;
        };
        let mut state = lock(&self.state);
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            if let Some(answer_tx) = state.pending.remove(&id) {
                let _ = answer_tx.send(message);
            }
        } else if let Some(session) = message.get("sessionId").and_then(Value::as_str) {
            if let Some(events_tx) = state.sessions.get(session) {
                let _ = events_tx.send(message);
            }
        } else if message["method"] == "Target.detachedFromTarget" {
            // The tab is gone (closed or crashed): its waits end at once.
            if let Some(session) = message["params"]["sessionId"].as_str() {
                state.sessions.remove(session);
            }
        }
    }

    fn closed_reason(&self) -> String {
        lock(&self.state)
            .closed
            .clone()
            .unwrap_or_else(|| "the page's DevTools session ended".to_string())
    }

    /// The last lines Chromium wrote to stderr (without the D-Bus noise of
    /// a machine with no session bus), for error messages.
    fn stderr_tail(&self) -> String {
        let log = std::fs::read(&self.stderr_log).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| !line.contains("dbus") && !line.trim().is_empty())
            .collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = &lines[lines.len().saturating_sub(15)..];
        format!("\nchromium's stderr, last lines:\n{}", tail.join("\n"))
    }
}

/// The reader thread: splits fd 4's stream on NUL and dispatches each message
/// until Chromium closes the pipe, then fails every waiter at once.
fn read_messages(mut pipe: io::PipeReader, conn: &Connection) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    // Bytes of `buffer` already searched for a NUL (screenshots are megabytes).
    let mut scanned = 0;
    let why = loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break "chromium closed the DevTools pipe (it exited or crashed)".to_string(),
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(end) = buffer[scanned..].iter().position(|&b| b == 0) {
                    let end = scanned + end;
                    conn.dispatch(&buffer[..end]);
                    buffer.drain(..=end);
                    scanned = 0;
                }
                scanned = buffer.len();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break format!("reading the DevTools pipe failed: {e}"),
        }
    };
    let mut state = lock(&conn.state);
    state.closed = Some(why);
    state.pending.clear();
    state.sessions.clear();
}

/// A console message, uncaught exception or browser log entry (CSP
/// violations are `security` errors, failed loads `network` errors).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `console` (console.*), `exception` (uncaught), or the Log domain's
    /// source: `security`, `network`, `javascript`, `rendering`, ...
    pub source: String,
    /// `log`/`warning`/`error`/... for console, `error` for exceptions,
    /// `verbose`/`info`/`warning`/`error` for log entries.
    pub level: String,
    pub text: String,
    /// The script or resource concerned, when Chromium says.
    pub url: String,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} {}] {}", self.source, self.level, self.text)?;
        if !self.url.is_empty() {
            write!(f, " ({})", self.url)?;
        }
        Ok(())
    }
}

impl Message {
    fn from_event(event: &Value) -> Option<Message> {
        let text_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let params = &event["params"];
        match event["method"].as_str()? {
            "Runtime.consoleAPICalled" => {
                let args = params["args"].as_array().cloned().unwrap_or_default();
                let text = args
                    .iter()
                    .map(|arg| match arg.get("value") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => text_of(&arg["description"]),
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                Some(Message {
                    source: "console".into(),
                    level: text_of(&params["type"]),
                    text,
                    url: text_of(&params["stackTrace"]["callFrames"][0]["url"]),
                })
            }
            "Runtime.exceptionThrown" => {
                let details = &params["exceptionDetails"];
                let text = details["exception"]["description"]
                    .as_str()
                    .or(details["text"].as_str())
                    .unwrap_or("an exception")
                    .to_string();
                Some(Message {
                    source: "exception".into(),
                    level: "error".into(),
                    text,
                    url: text_of(&details["url"]),
                })
            }
            "Log.entryAdded" => {
                let entry = &params["entry"];
                Some(Message {
                    source: text_of(&entry["source"]),
                    level: text_of(&entry["level"]),
                    text: text_of(&entry["text"]),
                    url: text_of(&entry["url"]),
                })
            }
            _ => None,
        }
    }
}

/// One tab, attached through a flattened DevTools session. Closed on drop.
pub struct Page {
    conn: Arc<Connection>,
    session: String,
    target: String,
    events: Receiver<Value>,
    messages: Vec<Message>,
}

impl Page {
    /// One command in this page's session; panics on an error or a timeout.
    #[track_caller]
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.conn.call(Some(&self.session), method, params, TIMEOUT)
    }

    /// Navigates and waits for the load event; returns the HTTP status of
    /// the document (0 for non-HTTP URLs). Panics when the navigation fails
    /// (connection refused, ...) or does not load within [`TIMEOUT`].
    #[track_caller]
    pub fn goto(&mut self, url: &str) -> u16 {
        self.drain_events();
        let navigated = self.call("Page.navigate", json!({ "url": url }));
        if let Some(error) = navigated["errorText"].as_str().filter(|e| !e.is_empty()) {
            panic!("navigating to {url} failed: {error}");
        }
        let loader = navigated["loaderId"].as_str().map(str::to_string);
        self.wait_for_load(&format!("loading {url}"), loader.as_deref());
        self.status()
    }

    /// Clicks the first element matching `selector` (a link or a submit
    /// button) and waits for the page it leads to to load, through any
    /// redirects (a form post answered 303); returns that page's HTTP status.
    #[track_caller]
    pub fn click_and_wait_load(&mut self, selector: &str) -> u16 {
        self.drain_events();
        let selector_js = js_string(selector);
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({selector_js}); \
             if (!el) throw new Error('no element matches ' + {selector_js}); \
             el.click(); return true; }})()"
        ));
        self.wait_for_load(
            &format!(
                "waiting for a page load after clicking {selector} \
                 (did the click navigate? an invalid form does not submit)"
            ),
            None,
        );
        self.status()
    }

    /// The HTTP status of the current document (0 when not loaded over HTTP).
    #[track_caller]
    pub fn status(&mut self) -> u16 {
        let status =
            self.eval("(performance.getEntriesByType('navigation')[0] || {}).responseStatus || 0");
        status
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0)
    }

    /// The current URL.
    #[track_caller]
    pub fn url(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Evaluates `js` in the page (awaiting a promise) and returns its value
    /// as JSON (`undefined` is null); panics, naming the script, when it throws.
    #[track_caller]
    pub fn eval(&mut self, js: &str) -> Value {
        self.try_eval(js).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Page::eval`] with the exception as an `Err`.
    pub fn try_eval(&mut self, js: &str) -> Result<Value, String> {
        let answer = self.try_call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(details) = answer.get("exceptionDetails") {
            let why = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("an exception");
            return Err(format!("the script threw {why}\nscript: {js}"));
        }
        Ok(answer["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// How many elements match `selector`.
    #[track_caller]
    pub fn count(&mut self, selector: &str) -> usize {
        let n = self.eval(&format!(
            "document.querySelectorAll({}).length",
            js_string(selector)
        ));
        n.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    }

    /// The `textContent` of the first element matching `selector`; panics
    /// when there is none.
    #[track_caller]
    pub fn text(&mut self, selector: &str) -> String {
        let selector_js = js_string(selector);
        let text = self.eval(&format!(
            "(() => {{ const el = document.querySelector({selector_js}); \
             if (!el) throw new Error('no element matches ' + {selector_js}); \
             return el.textContent; }})()"
        ));
        text.as_str().unwrap_or_default().to_string()
    }

    /// Sets the `value` of the form field matching `selector` (an input,
    /// textarea or select) and returns the value it then has: a select
    /// with no such option answers "".
    #[track_caller]
    pub fn set_value(&mut self, selector: &str, value: &str) -> String {
        let selector_js = js_string(selector);
        let result = self.eval(&format!(
            "(() => {{ const el = document.querySelector({selector_js}); \
             if (!el) throw new Error('no element matches ' + {selector_js}); \
             el.value = {value}; \
             el.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             el.dispatchEvent(new Event('change', {{ bubbles: true }})); \
             return el.value; }})()",
            value = js_string(value)
        ));
        result.as_str().unwrap_or_default().to_string()
    }

    /// Emulates a viewport of `width` x `height` CSS pixels; `mobile` also
    /// emulates a phone (meta viewport honoured, device scale factor 2).
    #[track_caller]
    pub fn set_viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": if mobile { 2 } else { 1 },
                "mobile": mobile,
            }),
        );
    }

    /// A PNG of the whole page (the viewport's width, the document's full
    /// height, at most 16384 CSS px), written to `path` (directories created).
    #[track_caller]
    pub fn screenshot(&mut self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let width = metrics["cssLayoutViewport"]["clientWidth"]
            .as_f64()
            .unwrap_or(1280.0)
            .max(1.0);
        let height = metrics["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(900.0)
            .clamp(1.0, 16384.0)
            .ceil();
        self.capture(
            path,
            json!({
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
            }),
        );
    }

    /// A PNG of what the viewport shows (the first screen), written to `path`.
    #[track_caller]
    pub fn screenshot_viewport(&mut self, path: &Path) {
        self.capture(path, json!({}));
    }

    #[track_caller]
    fn capture(&mut self, path: &Path, mut params: Value) {
        params["format"] = json!("png");
        // Fast zlib settings: a larger file, a fraction of the time.
        params["optimizeForSpeed"] = json!(true);
        let shot = self.call("Page.captureScreenshot", params);
        let data = shot["data"]
            .as_str()
            .expect("Page.captureScreenshot answered no data");
        let png =
            base64_decode(data).unwrap_or_else(|e| panic!("Page.captureScreenshot's data: {e}"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "Page.captureScreenshot did not answer a PNG"
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Every console message, uncaught exception and log entry (CSP
    /// violations, failed loads) since the page opened or
    /// [`Page::clear_messages`]; call after an `eval` or a load to be sure
    /// the page's earlier output has arrived.
    pub fn messages(&mut self) -> Vec<Message> {
        self.drain_events();
        self.messages.clone()
    }

    pub fn clear_messages(&mut self) {
        self.drain_events();
        self.messages.clear();
    }

    /// Takes the queued events, keeping only the messages.
    fn drain_events(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.record(&event);
        }
    }

    fn record(&mut self, event: &Value) {
        if let Some(message) = Message::from_event(event) {
            self.messages.push(message);
        }
    }

    /// Waits for the main frame to navigate (to the document of `loader`
    /// when given) and then for its load event.
    #[track_caller]
    fn wait_for_load(&mut self, what: &str, loader: Option<&str>) {
        let deadline = Instant::now() + TIMEOUT;
        self.wait_for(what, deadline, |event| {
            let frame = &event["params"]["frame"];
            event["method"] == "Page.frameNavigated"
                && frame.get("parentId").is_none()
                && loader.is_none_or(|loader| frame["loaderId"] == loader)
        });
        self.wait_for(what, deadline, |event| {
            event["method"] == "Page.loadEventFired"
        });
    }

    /// Waits until `deadline` for an event `wanted` accepts, keeping the
    /// messages seen on the way; panics on the deadline or a crash.
    #[track_caller]
    fn wait_for(
        &mut self,
        what: &str,
        deadline: Instant,
        mut wanted: impl FnMut(&Value) -> bool,
    ) -> Value {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.record(&event);
                    if event["method"] == "Inspector.targetCrashed" {
                        panic!("the page crashed while {what}{}", self.conn.stderr_tail());
                    }
                    if wanted(&event) {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out after {} s {what}{}",
                    TIMEOUT.as_secs(),
                    self.conn.stderr_tail()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the browser went away while {what}: {}{}",
                    self.conn.closed_reason(),
                    self.conn.stderr_tail()
                ),
            }
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        lock(&self.conn.state).sessions.remove(&self.session);
        let _ = self.conn.call(
            None,
            "Target.closeTarget",
            json!({ "targetId": self.target }),
            Duration::from_secs(5),
        );
    }
}

/// `s` as a JavaScript string literal (JSON's quoting is valid JavaScript).
pub fn js_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Standard base64 (with or without padding), as in CDP's binary fields.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for (i, byte) in text.bytes().enumerate() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' => continue,
            other => return Err(format!("not base64: byte {other:#04x} at {i}")),
        };
        bits = (bits << 6) | u32::from(sextet);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Ok(out)
}

#[test]
fn base64_decodes_padded_and_unpadded_text() {
    assert_eq!(base64_decode("").unwrap(), b"");
    assert_eq!(base64_decode("Zg==").unwrap(), b"f");
    assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
    assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
    assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
    assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
    assert_eq!(base64_decode("/+8=").unwrap(), [0xff, 0xef]);
    assert!(base64_decode("Zm9v!").is_err());
}
