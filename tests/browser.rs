//! The citizens' widget and the caseworkers' console in a real headless Chromium, driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, installed by
//! `scripts/setup-browser.sh`), against a real `cabildo serve` on loopback over excerpts of
//! the Chilean Constitution and the LGPD, plus a public ordinance whose text holds HTML and a
//! restricted protocol of one agency. Portal pages are served from two other loopback
//! origins: one in the server's CORS allow-list, one not. Accessibility is checked inside the
//! browser with axe-core (from npm, `scripts/setup-clients.sh`) against WCAG 2.1 A and AA.
//!
//! Skips when `../shared/corpus` is absent, and when Chromium or axe-core is missing unless
//! `CABILDO_REQUIRE_BROWSER=1` (set by `scripts/test.sh`). With `CABILDO_SCREENSHOTS=DIR` the
//! tests save the screenshots shown in the README there.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get as route_get;
use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::answer::Writer;
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::{Engine, IngestDefaults};
use cabildo_server::Config;
use cabildo_store::Rating;
use common::{add_key, excerpt_engine, get, on_own_runtime, start};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// The question of the Chilean voting age, and a follow-up that only makes sense after it.
const VOTING_AGE: &str = "¿A qué edad se puede votar en Chile?";
const FOLLOW_UP: &str = "¿Y cómo se pierde esa calidad?";

/// A public ordinance whose first article holds markup, which must render as text.
const ORDINANCE: &str = r#"---
source_url: https://nuevo.leychile.cl/servicios/Navegar/get_norma_json?idNorma=990001&idVersion=2024-01-01
id_norma: 990001
version_date: 2024-01-01
titulo_norma: "ORDENANZA DE PRUEBA SOBRE FERIAS LIBRES"
compuesto: ORD-1
organismos: ['MUNICIPALIDAD DE PRUEBA']
fecha_publicacion_original: 2024-01-01
derogada: false
---

# ORDENANZA DE PRUEBA SOBRE FERIAS LIBRES

Artículo 1°.- Los feriantes deberán exhibir el letrero <script>pwned=1</script> y la patente <img src=x onerror="pwned=2"> en cada puesto de la feria libre.

Artículo 2°.- Los puestos de la feria libre se instalarán desde las siete horas.
"#;

/// A protocol only caseworkers of `municipio-a` may read.
const PROTOCOL: &str = r#"---
source_url: https://nuevo.leychile.cl/servicios/Navegar/get_norma_json?idNorma=990002&idVersion=2024-01-01
id_norma: 990002
version_date: 2024-01-01
titulo_norma: "PROTOCOLO RESERVADO DE FISCALIZACION"
compuesto: PRT-1
organismos: ['MUNICIPALIDAD DE PRUEBA']
fecha_publicacion_original: 2024-01-01
derogada: false
---

# PROTOCOLO RESERVADO DE FISCALIZACION

Artículo 1°.- Los inspectores municipales aplicarán el procedimiento zarzamora de fiscalización nocturna en las ferias libres.
"#;

/// Hostile portal CSS: it must not reach into the widget. Theming through the documented
/// custom properties must.
const PORTAL_CSS: &str =
    "body * { color: rgb(255, 0, 0) !important; letter-spacing: 5px !important; \
    text-transform: uppercase !important; font-family: serif !important; } \
    button, .launcher, .panel { display: none !important; } \
    cabildo-chat { --cabildo-accent: rgb(0, 90, 50); }";

struct Rig {
    api: String,
    /// A portal origin in the allow-list.
    portal: String,
    /// An origin that is not.
    elsewhere: String,
    caseworker_a: String,
    caseworker_b: String,
    admin: String,
    engine: Arc<Engine>,
    runtime: tokio::runtime::Handle,
}

fn rig() -> Option<&'static Rig> {
    static RIG: OnceLock<Option<Rig>> = OnceLock::new();
    RIG.get_or_init(|| {
        on_own_runtime(|dir| async move {
            let engine = excerpt_engine(&dir).await?;
            ingest_text(&engine, &dir, "ordenanza-ferias.md", ORDINANCE, None).await;
            // Its next version: the stalls open an hour later from 2025.
            let next = ORDINANCE
                .replace("2024-01-01", "2025-01-01")
                .replace("desde las siete horas", "desde las ocho horas");
            ingest_text(&engine, &dir, "ordenanza-ferias-2025.md", &next, None).await;
            ingest_text(&engine, &dir, "protocolo.md", PROTOCOL, Some("municipio-a")).await;
            let portal = listen().await;
            let elsewhere = listen().await;
            let (portal_origin, elsewhere_origin) = (origin(&portal), origin(&elsewhere));
            let config = Config {
                cors_origins: vec![portal_origin.clone()],
                ..Config::default()
            };
            let api = start(engine.clone(), Writer::Extractive, config).await;
            serve_portal(portal, &api);
            serve_portal(elsewhere, &api);
            let caseworker_a = add_key(
                &engine,
                "caseworker-a",
                AccessRole::Caseworker,
                Some("municipio-a"),
                AccessLevel::Restricted,
                None,
            )
            .await;
            let caseworker_b = add_key(
                &engine,
                "caseworker-b",
                AccessRole::Caseworker,
                Some("municipio-b"),
                AccessLevel::Restricted,
                None,
            )
            .await;
            let admin = add_key(
                &engine,
                "admin",
                AccessRole::Admin,
                None,
                AccessLevel::Restricted,
                None,
            )
            .await;
            add_key(
                &engine,
                "spare",
                AccessRole::Partner,
                None,
                AccessLevel::Public,
                None,
            )
            .await;
            Some(Rig {
                api,
                portal: portal_origin,
                elsewhere: elsewhere_origin,
                caseworker_a,
                caseworker_b,
                admin,
                engine,
                runtime: tokio::runtime::Handle::current(),
            })
        })
    })
    .as_ref()
}

async fn ingest_text(engine: &Engine, dir: &Path, name: &str, text: &str, tenant: Option<&str>) {
    let folder = dir.join(name.replace('.', "-"));
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join(name), text).expect("write");
    let defaults = IngestDefaults {
        access: if tenant.is_some() {
            AccessLevel::Restricted
        } else {
            AccessLevel::Public
        },
        tenant: tenant.map(str::to_string),
        ..IngestDefaults::default()
    };
    let report = engine
        .ingest(&[folder], &defaults, &mut NoProgress)
        .await
        .expect("ingest");
    assert_eq!(report.summary.failures, 0, "{:?}", report.failed);
}

async fn listen() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

fn origin(listener: &tokio::net::TcpListener) -> String {
    format!("http://{}", listener.local_addr().expect("addr"))
}

/// A portal's pages on their own origin: `/` embeds the widget with a script tag under
/// hostile CSS, `/frame` embeds `/embed` in an iframe, `/blank` is empty.
fn serve_portal(listener: tokio::net::TcpListener, api: &str) {
    let widget = format!(
        "<!doctype html><html lang=\"es\"><head><meta charset=\"utf-8\"><title>Portal</title>\
         <style>{PORTAL_CSS}</style></head><body><main><h1>Portal de trámites</h1>\
         <p class=\"msg\">Texto del portal.</p><a href=\"#top\">Inicio</a></main>\
         <script src=\"{api}/widget.js\" data-lang=\"es\" data-register=\"usted\" defer></script>\
         </body></html>"
    );
    let frame = format!(
        "<!doctype html><html lang=\"pt\"><head><meta charset=\"utf-8\"><title>Portal</title></head>\
         <body><iframe src=\"{api}/embed?lang=pt\" title=\"Cabildo\" width=\"420\" height=\"600\"></iframe></body></html>"
    );
    let blank = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Elsewhere</title></head><body></body></html>";
    let app = axum::Router::new()
        .route("/", route_get(move || async move { Html(widget) }))
        .route("/frame", route_get(move || async move { Html(frame) }))
        .route("/blank", route_get(move || async move { Html(blank) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// Where axe-core's browser build is, when installed.
fn axe_script() -> Option<PathBuf> {
    let path = common::root().join("tests/clients/node_modules/axe-core/axe.min.js");
    path.exists().then_some(path)
}

/// The rig and a browser, or `None` (the test skips) when the corpus is absent or, unless
/// the browser is required, when Chromium or axe-core is missing.
async fn browser() -> Option<(&'static Rig, Browser)> {
    let rig = rig()?;
    let required = std::env::var("CABILDO_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let installed = which("chromedriver").is_some() && which("chromium").is_some();
    if !installed || axe_script().is_none() {
        assert!(
            !required,
            "Chromium, chromedriver or axe-core is missing: run scripts/setup-browser.sh and scripts/setup-clients.sh"
        );
        eprintln!("skipped: Chromium, chromedriver or axe-core not installed");
        return None;
    }
    Some((rig, Browser::start().await))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// A chromedriver of its own and one headless Chromium session; the driver is stopped on drop.
struct Browser {
    client: Client,
    driver: Child,
    /// The browser's profile and temporary files, removed after it stops.
    _scratch: tempfile::TempDir,
}

impl Drop for Browser {
    /// Stops chromedriver and the Chromium it started (its process group), even when a test
    /// failed before closing its session.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let scratch = tempfile::tempdir().expect("tempdir");
        let driver = Command::new("chromedriver")
            .env("TMPDIR", scratch.path())
            .arg(format!("--port={port}"))
            // A group of its own, with the browsers it starts, for `Drop` to stop.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let ready = Instant::now();
        let up = || {
            common::agent()
                .get(&format!("{url}/status"))
                .call()
                .is_ok_and(|r| r.status() == 200)
        };
        while !up() {
            assert!(
                ready.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                              "--window-size=1280,900", "--lang=es"] }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Browser {
            client,
            driver,
            _scratch: scratch,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs `body` (a function body: `return …`) in the page.
    async fn js(&self, body: &str) -> Value {
        self.client
            .execute(body, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed ({e}): {body}"))
    }

    /// Waits until the expression is truthy in the page, then returns its value.
    async fn until(&self, expression: &str, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(&format!("return ({expression});")).await;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}: {expression}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses keys as a keyboard user would, into whatever has focus.
    async fn keys(&self, text: &str) {
        let mut actions = KeyActions::new("keyboard".into());
        for c in text.chars() {
            actions = actions
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(actions).await.expect("keys");
    }

    async fn key(&self, key: Key) {
        self.keys(&char::from(key).to_string()).await;
    }

    /// axe-core's WCAG 2.1 A and AA violations inside `context` (a CSS selector, or the
    /// whole page), one line each.
    async fn axe(&self, context: Option<&str>) -> Vec<String> {
        let source = std::fs::read_to_string(axe_script().expect("axe-core")).expect("read axe");
        self.js(&format!("{source}\nreturn true;")).await;
        let context = context.map_or("document".to_string(), |c| {
            format!("{{ include: [{c:?}] }}")
        });
        let script = format!(
            "const done = arguments[arguments.length - 1];\
             axe.run({context}, {{ runOnly: {{ type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }} }})\
               .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => JSON.stringify(n.target)).join(', '))))\
               .catch(e => done(['axe failed: ' + e]));"
        );
        let found = self
            .client
            .execute_async(&script, Vec::new())
            .await
            .expect("axe");
        serde_json::from_value(found).expect("violations")
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("CABILDO_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(Path::new(&dir).join(name), png).expect("write screenshot");
    }

    async fn size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("window size");
    }

    async fn close(self) {
        let client = self.client.clone();
        let _ = client.close().await;
    }
}

/// JavaScript for an element inside the widget's shadow root.
fn shadow(selector: &str) -> String {
    // `?.`: waits on it read "not yet" while the script has not drawn the widget.
    format!("document.querySelector('cabildo-chat')?.shadowRoot.querySelector({selector:?})")
}

/// Asks in the open widget by keyboard and waits for that answer's sources.
async fn ask_widget(b: &Browser, question: &str, answers_before: usize) -> Value {
    b.keys(question).await;
    b.key(Key::Enter).await;
    let bots = format!(
        "{}.querySelectorAll('.msg.bot ol.sources').length > {answers_before}",
        shadow(".log")
    );
    b.until(&bots, "the answer's sources").await;
    b.js(&format!(
        "const last = [...{log}.querySelectorAll('.msg.bot')].pop();\
         return {{ text: last.querySelector('p.text').textContent,\
                   links: [...last.querySelectorAll('ol.sources a')].map(a => ({{ label: a.firstChild.textContent, href: a.href }})),\
                   quotes: [...last.querySelectorAll('blockquote')].map(q => q.textContent),\
                   busy: last.getAttribute('aria-busy') }};",
        log = shadow(".log")
    ))
    .await
}

fn has_article(links: &Value, article: &str) -> bool {
    links.as_array().is_some_and(|links| {
        links.iter().any(|l| {
            let label = l["label"].as_str().unwrap_or("");
            label.ends_with(article) || label.contains(&format!("{article},"))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_asks_in_the_widget_on_a_portal_follows_up_and_rates_the_answer() {
    let Some((rig, b)) = browser().await else {
        return;
    };
    b.goto(&format!("{}/", rig.portal)).await;
    b.until(&shadow(".launcher"), "the widget's button").await;

    // The portal's CSS stays out; its theme, through the custom properties, comes in.
    let style = b
        .js(&format!(
            "const s = getComputedStyle({});\
             return [s.display, s.color, s.letterSpacing, s.textTransform, s.backgroundColor];",
            shadow(".launcher")
        ))
        .await;
    assert_eq!(
        style[0], "block",
        "the portal's CSS hid the widget: {style}"
    );
    assert_eq!(style[1], "rgb(255, 255, 255)", "{style}");
    assert_eq!(style[2], "normal", "{style}");
    assert_eq!(style[3], "none", "{style}");
    assert_eq!(
        style[4], "rgb(0, 90, 50)",
        "the portal's --cabildo-accent: {style}"
    );
    // And the widget's CSS stays in: the portal's own paragraph keeps its look.
    let portal_p = b
        .js("return getComputedStyle(document.querySelector('p.msg')).maxWidth;")
        .await;
    assert_eq!(portal_p, "none");

    // Keyboard only: Tab reaches the button, Enter opens the panel with the focus in the
    // question box, Escape closes it and gives the focus back to the button.
    let focus = "(document.activeElement === document.querySelector('cabildo-chat') \
                 ? document.querySelector('cabildo-chat').shadowRoot.activeElement?.className || document.querySelector('cabildo-chat').shadowRoot.activeElement?.id : '')";
    let mut tabs = 0;
    while b.js(&format!("return {focus};")).await != "launcher" {
        b.key(Key::Tab).await;
        tabs += 1;
        assert!(tabs < 10, "Tab never reached the widget's button");
    }
    // From pressing the button to the panel painted (after the next frame), beside the
    // same for a bare button showing a bare box on the same page (docs/benchmarks.md).
    let time_to_paint = |click: String| {
        format!(
            "const done = arguments[arguments.length - 1]; const t0 = performance.now();\
             {click}; requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));"
        )
    };
    let baseline_ms = b
        .client
        .execute_async(
            &time_to_paint(
                "const box = document.createElement('div'); box.hidden = true; box.textContent = 'x'.repeat(500);\
                 const bare = document.createElement('button'); bare.onclick = () => { box.hidden = false; };\
                 document.body.append(bare, box); bare.click()"
                    .into(),
            ),
            Vec::new(),
        )
        .await
        .expect("baseline");
    let open_ms = b
        .client
        .execute_async(
            &time_to_paint(format!("{}.click()", shadow(".launcher"))),
            Vec::new(),
        )
        .await
        .expect("open");
    eprintln!(
        "widget: button to painted panel {open_ms} ms (a bare button and box: {baseline_ms} ms)"
    );
    assert_eq!(b.js(&format!("return {focus};")).await, "cabildo-question");
    b.key(Key::Escape).await;
    assert_eq!(
        b.js(&format!("return {}.hidden;", shadow(".panel"))).await,
        true
    );
    assert_eq!(b.js(&format!("return {focus};")).await, "launcher");
    b.key(Key::Enter).await;
    assert_eq!(b.js(&format!("return {focus};")).await, "cabildo-question");

    // The voting-age question streams in, cited to Article 13 with its official link.
    let first = ask_widget(&b, VOTING_AGE, 0).await;
    assert!(
        first["text"]
            .as_str()
            .is_some_and(|t| t.contains("dieciocho años")),
        "{first}"
    );
    assert!(has_article(&first["links"], "Artículo 13"), "{first}");
    let link = first["links"]
        .as_array()
        .and_then(|l| {
            l.iter().find(|l| {
                l["label"]
                    .as_str()
                    .is_some_and(|s| s.ends_with("Artículo 13"))
            })
        })
        .expect("a link to Article 13");
    assert!(
        link["href"]
            .as_str()
            .is_some_and(|h| h.starts_with("https://www.bcn.cl/leychile/navegar?idNorma=242302")),
        "{link}"
    );
    assert!(first["quotes"].as_array().is_some_and(|q| q
        .iter()
        .any(|q| q.as_str().is_some_and(|q| q.contains("dieciocho")))));
    // The answer was announced sentence by sentence, not as a whole.
    let live = b
        .js(&format!("return {}.textContent;", shadow("[aria-live]")))
        .await;
    assert!(
        live.as_str()
            .is_some_and(|l| !l.contains(first["text"].as_str().unwrap_or("-"))),
        "{live}"
    );

    // A follow-up keeps the conversation.
    let second = ask_widget(&b, FOLLOW_UP, 1).await;
    assert!(has_article(&second["links"], "Artículo 17"), "{second}");

    let violations = b.axe(Some("cabildo-chat")).await;
    assert!(
        violations.is_empty(),
        "WCAG 2.1 A/AA violations in the widget: {violations:#?}"
    );
    b.screenshot("widget-desktop.png").await;

    // Feedback on the first answer, then a comment, reach the server.
    let rate = format!("[...{}.querySelectorAll('.rate')][0]", shadow(".log"));
    b.js(&format!(
        "{rate}.querySelectorAll('button')[0].click(); return true;"
    ))
    .await;
    b.until(
        &format!("{rate}.querySelector('[role=status]').textContent"),
        "thanks",
    )
    .await;
    b.js(&format!(
        "{rate}.querySelector('textarea').value = 'Clara y con la fuente.';\
         {rate}.querySelector('.comment button').click(); return true;"
    ))
    .await;
    let engine = rig.engine.clone();
    let started = Instant::now();
    loop {
        let records = rig
            .runtime
            .spawn({
                let engine = engine.clone();
                async move { engine.registry().feedback_between(None, None).await }
            })
            .await
            .expect("join")
            .expect("feedback");
        let rated = records.iter().find(|r| r.answer.question == VOTING_AGE);
        if let Some(r) = rated.filter(|r| r.comment.is_some()) {
            assert_eq!(r.rating, Rating::Useful);
            assert_eq!(r.comment.as_deref(), Some("Clara y con la fuente."));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "feedback never arrived: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // At 360 px wide the panel fills the screen and still works.
    b.size(360, 740).await;
    let width = b
        .js(&format!(
            "return {}.getBoundingClientRect().width;",
            shadow(".panel")
        ))
        .await;
    assert!(width.as_f64().is_some_and(|w| w <= 360.0), "{width}");
    b.screenshot("widget-360px.png").await;
    // At 320 px the question box and the send button are still on screen.
    b.size(320, 640).await;
    let fits = b
        .js(&format!(
            "const r = {}.getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth && r.bottom <= window.innerHeight;",
            shadow("form button[type=submit]")
        ))
        .await;
    assert_eq!(fits, true, "the send button is off screen at 320 px");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_is_framed_only_by_allowed_portals_and_called_only_from_them() {
    let Some((rig, b)) = browser().await else {
        return;
    };
    let search = format!(
        "const done = arguments[arguments.length - 1];\
         fetch('{}/v1/search', {{ method: 'POST', headers: {{ 'content-type': 'application/json' }},\
                                body: JSON.stringify({{ query: 'ciudadanos' }}) }})\
           .then(r => done('allowed ' + r.status), e => done('refused ' + e.name));",
        rig.api
    );
    b.goto(&format!("{}/blank", rig.portal)).await;
    let allowed = b
        .client
        .execute_async(&search, Vec::new())
        .await
        .expect("fetch");
    assert_eq!(allowed, "allowed 200");
    b.goto(&format!("{}/blank", rig.elsewhere)).await;
    let refused = b
        .client
        .execute_async(&search, Vec::new())
        .await
        .expect("fetch");
    assert_eq!(
        refused, "refused TypeError",
        "CORS let a disallowed origin in"
    );

    // /embed in an allowed portal's iframe, in Portuguese from its query string.
    b.goto(&format!("{}/frame", rig.portal)).await;
    b.client.enter_frame(0).await.expect("frame");
    let intro = b
        .until(
            &format!("{}?.textContent", shadow(".intro")),
            "the embedded widget",
        )
        .await;
    assert!(
        intro
            .as_str()
            .is_some_and(|t| t.starts_with("Respondo com o que dizem")),
        "{intro}"
    );
    let violations = b.axe(None).await;
    assert!(
        violations.is_empty(),
        "WCAG 2.1 A/AA violations in /embed: {violations:#?}"
    );
    // …and refused in the iframe of a portal not in the allow-list.
    b.goto(&format!("{}/frame", rig.elsewhere)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.client.enter_frame(0).await.expect("frame");
    let framed = b
        .js("try { return !!document.querySelector('cabildo-chat'); } catch (e) { return false; }")
        .await;
    assert_eq!(framed, false, "a disallowed portal framed /embed");
    b.close().await;
}

/// A view of the console, in Spanish.
fn console(rig: &Rig, view: &str) -> String {
    format!("{}/console?lang=es#{view}", rig.api)
}

/// Signs in on the console with an API key and waits for the principal to show.
async fn sign_in(b: &Browser, rig: &Rig, key: &str) {
    b.goto(&console(rig, "signin")).await;
    b.js("sessionStorage.clear(); return true;").await;
    b.client.refresh().await.expect("reload");
    b.until(
        "document.querySelector('input[name=value]')",
        "the sign-in form",
    )
    .await;
    b.js(&format!(
        "const f = document.querySelector('main form'); f.value.value = {key:?}; f.requestSubmit(); return true;"
    ))
    .await;
    b.until(
        "document.getElementById('principal')?.textContent",
        "the principal",
    )
    .await;
}

/// Searches in the console (on the search view) and returns the hits' labels.
async fn console_search(b: &Browser, query: &str, jurisdiction: &str, date: &str) -> Vec<String> {
    b.until(
        "document.querySelector('main form[role=search]')",
        "the search form",
    )
    .await;
    b.js(&format!(
        "const f = document.querySelector('main form[role=search]');\
         f.query.value = {query:?}; f.jurisdiction.value = {jurisdiction:?}; f.in_force_on.value = {date:?};\
         document.querySelector('main section').textContent = ''; f.requestSubmit(); return true;"
    ))
    .await;
    b.until(
        "document.querySelector('#results-title, main section .error')",
        "search results",
    )
    .await;
    let labels = b
        .js("return [...document.querySelectorAll('.hit .label')].map(e => e.textContent);")
        .await;
    serde_json::from_value(labels).expect("labels")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caseworker_searches_with_filters_opens_a_provision_copies_its_citation_and_asks() {
    let Some((rig, b)) = browser().await else {
        return;
    };
    sign_in(&b, rig, &rig.caseworker_a).await;
    let who = b
        .js("return document.getElementById('principal').textContent;")
        .await;
    assert!(
        who.as_str()
            .is_some_and(|w| w.contains("caseworker") && w.contains("municipio-a")),
        "{who}"
    );

    let all = console_search(&b, "ciudadanos sufragio", "", "").await;
    assert!(all.iter().any(|l| l.ends_with("Artículo 13")), "{all:?}");
    let chile = console_search(&b, "ciudadanos sufragio", "CL", "").await;
    assert!(
        !chile.is_empty() && chile.iter().all(|l| !l.contains("Lei")),
        "{chile:?}"
    );
    let brazil = console_search(&b, "dados pessoais", "BR", "").await;
    assert!(
        !brazil.is_empty() && brazil.iter().all(|l| !l.contains("Constitución")),
        "{brazil:?}"
    );
    // This version of the Constitution is in force from 2026-04-16.
    let before = console_search(&b, "ciudadanos sufragio", "CL", "2020-01-01").await;
    assert!(
        before.iter().all(|l| !l.contains("Constitución")),
        "{before:?}"
    );
    let after = console_search(&b, "ciudadanos sufragio", "CL", "2026-06-01").await;
    assert!(
        after.iter().any(|l| l.ends_with("Artículo 13")),
        "{after:?}"
    );
    let marks = b
        .js("return document.querySelectorAll('.hit mark').length;")
        .await;
    assert!(
        marks.as_u64().is_some_and(|n| n > 0),
        "no highlighted terms"
    );
    let violations = b.axe(None).await;
    assert!(
        violations.is_empty(),
        "WCAG 2.1 A/AA violations on search: {violations:#?}"
    );
    b.screenshot("console-search.png").await;

    // Open Article 13 inside its norm: highlighted, focused, with its neighbours.
    b.js("const hit = [...document.querySelectorAll('.hit')].find(h => h.querySelector('.label').textContent.endsWith('Artículo 13'));\
          [...hit.querySelectorAll('a')].find(a => a.getAttribute('href').startsWith('#norm/')).click(); return true;")
        .await;
    let current = b
        .until(
            "document.querySelector('.passage.current h3')?.textContent",
            "the provision",
        )
        .await;
    assert!(
        current.as_str().is_some_and(|c| c.ends_with("Artículo 13")),
        "{current}"
    );
    let focused = b.js("return document.activeElement?.textContent;").await;
    assert_eq!(focused, current);
    let next = b.js("return [...document.querySelectorAll('main nav a')].map(a => a.textContent).join(' | ');").await;
    assert!(
        next.as_str()
            .is_some_and(|n| n.contains("Artículo 12") && n.contains("Artículo 14")),
        "{next}"
    );
    b.js("document.querySelector('main nav button.copy').click(); return true;")
        .await;
    let copied = b
        .until(
            "document.querySelector('main nav output').textContent",
            "the citation",
        )
        .await;
    assert!(
        copied.as_str().is_some_and(
            |c| c.contains("Artículo 13 — https://www.bcn.cl/leychile/navegar?idNorma=242302")
        ),
        "{copied}"
    );
    let violations = b.axe(None).await;
    assert!(
        violations.is_empty(),
        "WCAG 2.1 A/AA violations on a norm: {violations:#?}"
    );

    // Ask, with the sources beside the answer.
    b.goto(&console(rig, "ask")).await;
    b.until(
        "document.querySelector('main textarea[name=question]')",
        "the ask form",
    )
    .await;
    b.js(&format!(
        "const f = document.querySelector('main form'); f.question.value = {VOTING_AGE:?}; f.requestSubmit(); return true;"
    ))
    .await;
    b.until("document.querySelector('aside.sources ol')", "the sources")
        .await;
    let sources = b.js("return [...document.querySelectorAll('aside.sources .label')].map(e => e.textContent);").await;
    assert!(
        has_article(
            &json!(sources
                .as_array()
                .map(|s| s.iter().map(|l| json!({"label": l})).collect::<Vec<_>>())),
            "Artículo 13"
        ),
        "{sources}"
    );
    let answer = b
        .js("return document.getElementById('answer').textContent;")
        .await;
    assert!(
        answer.as_str().is_some_and(|a| a.contains("dieciocho")),
        "{answer}"
    );
    let violations = b.axe(None).await;
    assert!(
        violations.is_empty(),
        "WCAG 2.1 A/AA violations on ask: {violations:#?}"
    );
    b.screenshot("console-ask.png").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_sees_no_restricted_document_and_anonymous_visitors_no_admin_views() {
    let Some((rig, b)) = browser().await else {
        return;
    };
    // The owning agency's caseworker finds its protocol; another agency's does not.
    sign_in(&b, rig, &rig.caseworker_a).await;
    let own = console_search(&b, "procedimiento zarzamora", "", "").await;
    assert!(
        own.iter().any(|l| l.contains("Protocolo Reservado")),
        "{own:?}"
    );
    sign_in(&b, rig, &rig.caseworker_b).await;
    let other = console_search(&b, "procedimiento zarzamora", "", "").await;
    assert!(
        other.iter().all(|l| !l.contains("Protocolo Reservado")),
        "{other:?}"
    );
    b.goto(&console(rig, "norm/cl-leychile-990002")).await;
    let refused = b
        .until(
            "document.querySelector('main .error')?.textContent",
            "a refusal",
        )
        .await;
    assert!(
        refused.as_str().is_some_and(|r| !r.contains("zarzamora")),
        "{refused}"
    );
    let text = b
        .js("return document.querySelector('main').textContent;")
        .await;
    assert!(
        text.as_str().is_some_and(|t| !t.contains("zarzamora")),
        "{text}"
    );

    // Nor does the widget tell an anonymous citizen about it.
    b.goto(&format!("{}/embed", rig.api)).await;
    b.until(&shadow("textarea"), "the embedded widget").await;
    b.js(&format!("{}.focus(); return true;", shadow("textarea")))
        .await;
    let answer = ask_widget(
        &b,
        "¿En qué consiste el procedimiento zarzamora de fiscalización nocturna?",
        0,
    )
    .await;
    assert!(
        !answer.to_string().contains("zarzamora de fiscaliz"),
        "{answer}"
    );
    assert!(
        !answer.to_string().contains("Protocolo Reservado"),
        "{answer}"
    );

    // An anonymous visitor gets no admin view, and the API refuses its calls.
    b.goto(&console(rig, "admin")).await;
    b.js("sessionStorage.clear(); return true;").await;
    b.client.refresh().await.expect("reload");
    let message = b
        .until(
            "document.querySelector('main .error')?.textContent",
            "the refusal",
        )
        .await;
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("administrador")),
        "{message}"
    );
    let tables = b
        .js("return document.querySelectorAll('main table').length;")
        .await;
    assert_eq!(tables, 0);
    let nav = b
        .js("return document.getElementById('nav').textContent;")
        .await;
    assert!(
        nav.as_str().is_some_and(|n| !n.contains("Administración")),
        "{nav}"
    );
    for path in ["/v1/jobs", "/v1/clients", "/v1/audit/verify"] {
        assert_eq!(get(&format!("{}{path}", rig.api)).0, 401, "{path}");
    }

    // An admin uploads a document and watches its job, revokes a client, verifies the chain.
    sign_in(&b, rig, &rig.admin).await;
    let violations = b.axe(None).await;
    assert!(
        violations.is_empty(),
        "WCAG 2.1 A/AA violations on sign-in/search: {violations:#?}"
    );
    b.goto(&console(rig, "admin")).await;
    b.until("document.querySelector('#clients table')", "the clients")
        .await;
    let upload_dir = tempfile::tempdir().expect("tempdir");
    let file = upload_dir.path().join("ordenanza-ferias-2.md");
    std::fs::write(&file, ORDINANCE.replace("990001", "990003")).expect("write");
    let input = b
        .client
        .find(fantoccini::Locator::Css("#upload input[type=file]"))
        .await
        .expect("file input");
    input
        .send_keys(&file.display().to_string())
        .await
        .expect("choose file");
    b.js("document.getElementById('upload').requestSubmit(); return true;")
        .await;
    b.until(
        "[...document.querySelectorAll('#jobs tbody tr')].some(r => r.cells[1].textContent === 'done' && r.cells[3].textContent === '1')",
        "the upload's job, done",
    )
    .await;
    b.js("window.confirm = () => true; [...document.querySelectorAll('#clients button')].find(x => x.getAttribute('aria-label').endsWith(' spare')).click(); return true;").await;
    b.until(
        "[...document.querySelectorAll('#clients tbody tr')].find(r => r.cells[0].textContent === 'spare')?.cells[5].textContent.startsWith('revocada')",
        "the revocation",
    )
    .await;
    b.js("document.getElementById('verify').click(); return true;")
        .await;
    let audit = b
        .until(
            "document.querySelector('#audit-result .ok, #audit-result .bad')?.textContent",
            "the audit check",
        )
        .await;
    assert_eq!(audit, "La cadena está íntegra");
    let violations = b.axe(None).await;
    assert!(
        violations.is_empty(),
        "WCAG 2.1 A/AA violations on admin: {violations:#?}"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_in_a_passage_renders_as_text_in_both_pages() {
    let Some((rig, b)) = browser().await else {
        return;
    };
    sign_in(&b, rig, &rig.caseworker_a).await;
    let hits = console_search(&b, "feriantes letrero patente", "", "").await;
    assert!(hits.iter().any(|l| l.contains("Ferias Libres")), "{hits:?}");
    let snippet = b.js("return [...document.querySelectorAll('.hit .snippet')].map(s => s.textContent).join(' ');").await;
    assert!(
        snippet
            .as_str()
            .is_some_and(|s| s.contains("<script>pwned=1</script>")),
        "{snippet}"
    );
    let injected = b.js("return [document.querySelectorAll('main img, main script').length, typeof window.pwned];").await;
    assert_eq!(injected, json!([0, "undefined"]));

    b.goto(&format!("{}/embed?lang=es", rig.api)).await;
    b.until(&shadow("textarea"), "the embedded widget").await;
    b.js(&format!("{}.focus(); return true;", shadow("textarea")))
        .await;
    let answer = ask_widget(
        &b,
        "¿Qué deben exhibir los feriantes en cada puesto de la feria libre?",
        0,
    )
    .await;
    let quotes = answer["quotes"].to_string();
    assert!(
        quotes.contains(r#"<img src=x onerror=\"pwned=2\">"#),
        "{answer}"
    );
    let injected = b
        .js(
            "const r = document.querySelector('cabildo-chat').shadowRoot;\
             return [r.querySelectorAll('img, script').length, typeof window.pwned];",
        )
        .await;
    assert_eq!(injected, json!([0, "undefined"]));

    // A question the norms do not answer: said plainly, with the closest provisions and the
    // public body to ask.
    let abstained = ask_widget(
        &b,
        "¿Cuánto cuesta renovar el pasaporte en el Registro Civil?",
        1,
    )
    .await;
    let notice = b
        .js(&format!(
            "return [...{}.querySelectorAll('.msg.bot')].pop().querySelector('.notice')?.textContent;",
            shadow(".log")
        ))
        .await;
    assert_eq!(
        notice, "Las normas disponibles no responden esta pregunta.",
        "{abstained}"
    );
    assert!(
        abstained["text"]
            .as_str()
            .is_some_and(|t| t.contains("consulte a")),
        "{abstained}"
    );
    assert!(
        abstained["links"].as_array().is_some_and(|l| !l.is_empty()),
        "{abstained}"
    );
    b.close().await;
}

#[test]
fn every_response_carries_the_security_policy_and_cors_follows_the_allow_list() {
    let Some(rig) = rig() else {
        eprintln!("skipped: ../shared/corpus not found");
        return;
    };
    let head = |path: &str, origin: &str| {
        let mut r = common::agent()
            .get(&format!("{}{path}", rig.api))
            .header("origin", origin)
            .call()
            .expect("request");
        let h = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let out = (
            r.status().as_u16(),
            h("content-security-policy"),
            h("access-control-allow-origin"),
            h("set-cookie"),
        );
        let _ = r.body_mut().read_to_string();
        out
    };
    for path in [
        "/console",
        "/embed",
        "/docs",
        "/widget.js",
        "/console.js",
        "/v1/norms",
        "/healthz",
        "/nowhere",
    ] {
        let (status, csp, _, cookie) = head(path, &rig.portal);
        assert!(status == 200 || path == "/nowhere", "{path}: {status}");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(cookie.is_empty(), "{path} set a cookie");
        let framers = if path == "/embed" {
            format!("frame-ancestors 'self' {}", rig.portal)
        } else {
            "frame-ancestors 'none'".to_string()
        };
        assert!(csp.contains(&framers), "{path}: {csp}");
    }
    assert_eq!(head("/v1/norms", &rig.portal).2, rig.portal);
    assert_eq!(
        head("/v1/norms", &rig.elsewhere).2,
        "",
        "CORS allowed an origin not in the list"
    );
    assert_eq!(head("/v1/norms", "https://evil.example").2, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caseworker_reads_a_norm_as_it_stood_on_an_earlier_version() {
    let Some((rig, b)) = browser().await else {
        return;
    };
    sign_in(&b, rig, &rig.caseworker_a).await;
    b.js("location.hash = '#norm/cl-leychile-990001/-'; return true;")
        .await;
    let picked = b
        .until(
            "document.querySelector('main select[name=version]')?.value",
            "the version picker",
        )
        .await;
    assert_eq!(picked, "2025-01-01", "today's version is shown first");
    let now = b
        .js("return [...document.querySelectorAll('.passage')].map(p => p.textContent).join(' ');")
        .await;
    assert!(
        now.as_str()
            .is_some_and(|t| t.contains("ocho horas") && !t.contains("siete horas")),
        "{now}"
    );
    let violations = b.axe(None).await;
    assert!(
        violations.is_empty(),
        "WCAG 2.1 A/AA violations on a norm with versions: {violations:#?}"
    );
    b.js(
        "const s = document.querySelector('main select[name=version]'); s.value = '2024-01-01';\
          s.dispatchEvent(new Event('change')); return true;",
    )
    .await;
    let before = b
        .until(
            "[...document.querySelectorAll('.passage')].map(p => p.textContent).join(' ').includes('siete horas') \
             && document.querySelector('.norm-meta').textContent",
            "the 2024 text",
        )
        .await;
    assert!(
        before.as_str().is_some_and(|m| m.contains("2024-01-01")),
        "{before}"
    );
}
