//! The web UI in a real browser: Debian's chromium, headless, driven through chromedriver
//! (WebDriver, the `fantoccini` client). A visitor signs in, lists and searches (the script's
//! search-as-you-type), opens a multi-platform Windows index, copies a pull command, browses an
//! image's files (the union of its layers) down to a file's text, deletes a
//! tag through the confirmation page, and signs out; another user sees neither the other's
//! repositories nor their pages; hostile text from an image never runs; the keyboard reaches
//! the content first; text contrast meets WCAG AA. Screenshots of each step are saved under
//! `target/tmp/ui-screenshots/`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::images::seeded;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium chromium-driver; scripts/test installs them)");
    let driver = Driver { child, port };
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"],
        },
    });
    let started = Instant::now();
    loop {
        let connected = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await;
        match connected {
            Ok(client) => return (driver, client),
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no browser session: {e}"),
        }
    }
}

/// Saves a screenshot of the page as `NN-name.png`.
async fn shot(client: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Clicks the element `what` finds (the test fails naming it when there is none).
async fn click(client: &Client, what: Locator<'_>) {
    let described = format!("{what:?}");
    client
        .find(what)
        .await
        .unwrap_or_else(|e| panic!("{described}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn text(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

/// The texts of the first cells of a table's rows.
async fn first_cells(client: &Client, table: &str) -> Vec<String> {
    let mut names = Vec::new();
    for cell in client
        .find_all(Locator::Css(&format!("#{table} tbody tr td:first-child")))
        .await
        .unwrap()
    {
        names.push(cell.text().await.unwrap());
    }
    names
}

/// Waits until `check` holds (the page's script works asynchronously).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(client: &Client, base: &str, user: &str, password: &str) {
    client.goto(&format!("{base}/ui/login")).await.unwrap();
    for (field, value) in [("username", user), ("password", password)] {
        let input = client.find(Locator::Id(field)).await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    click(client, Locator::Css("form.login button[type=submit]")).await;
    eventually("signed in", || async {
        client.find(Locator::Css("nav.account .user")).await.is_ok()
    })
    .await;
}

/// WCAG contrast of an element's text colour against the page background.
const CONTRAST: &str = r#"
const parse = c => c.match(/[\d.]+/g).slice(0, 3).map(Number);
const lum = rgb => { const [r, g, b] = rgb.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const bg = parse(getComputedStyle(document.body).backgroundColor);
const out = {};
for (const selector of arguments[0]) {
  const element = document.querySelector(selector);
  if (!element) { out[selector] = null; continue; }
  let back = bg, node = element;
  while (node && node !== document) { const c = getComputedStyle(node).backgroundColor; if (!c.startsWith("rgba(0, 0, 0, 0)")) { back = parse(c); break; } node = node.parentNode; }
  const [a, b] = [lum(parse(getComputedStyle(element).color)), lum(back)];
  out[selector] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
return out;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_browses_signs_in_deletes_and_sees_only_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (open, r, _) = seeded(dir.path()).await;
    let base = r.base.clone();
    let (_driver, client) = browser().await;

    // Anonymous: nothing to see, a way to sign in. The keyboard reaches "skip to content"
    // first, and it moves focus to the content.
    client.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/ui/");
    assert!(text(&client, "main").await.contains("No repositories you may see."));
    shot(&client, "01-anonymous").await;
    let tab = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: Key::Tab.into() })
        .then(KeyAction::Up { value: Key::Tab.into() });
    client.perform_actions(tab).await.unwrap();
    let focused = client.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Skip to content");
    focused.send_keys(&Key::Enter.to_string()).await.unwrap();
    eventually("focus on the content", || async {
        client
            .active_element()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap()
            .as_deref()
            == Some("main")
    })
    .await;

    // Alice signs in and sees her three repositories, not bob's.
    sign_in(&client, &base, "alice", "a-pass").await;
    assert_eq!(
        first_cells(&client, "repositories").await,
        ["evil/app", "library/busybox", "windows/servercore"]
    );
    shot(&client, "02-repositories").await;

    // Search as you type: the script asks the API and redraws the table.
    client
        .find(Locator::Id("q"))
        .await
        .unwrap()
        .send_keys("serv")
        .await
        .unwrap();
    eventually("search results", || async {
        first_cells(&client, "repositories").await == ["windows/servercore"]
    })
    .await;
    assert!(client.current_url().await.unwrap().as_str().ends_with("/ui/?q=serv"));

    // The Windows index: both platforms, their builds and the hosts that run them.
    click(&client, Locator::LinkText("windows/servercore")).await;
    click(&client, Locator::LinkText("ltsc2022")).await;
    let platforms = text(&client, "#platforms").await;
    for shown in [
        "10.0.20348.2113",
        "builds 20348–26100",
        "10.0.17763.5830",
        "build 17763 only",
    ] {
        assert!(platforms.contains(shown), "{shown} in {platforms}");
    }
    shot(&client, "03-windows-index").await;
    // A copy button copies (the button says so).
    let copy = client.find(Locator::Css("button.copy")).await.unwrap();
    copy.click().await.unwrap();
    eventually("copied", || async { copy.text().await.unwrap() == "Copied" }).await;

    // Hostile text is text: nothing from the image ran.
    client.goto(&format!("{base}/ui/r/evil/app:hostile")).await.unwrap();
    assert_eq!(
        client.execute("return typeof window.pwned", vec![]).await.unwrap(),
        json!("undefined")
    );
    assert!(
        text(&client, "#config")
            .await
            .contains("<script>window.pwned=1</script>")
    );
    shot(&client, "04-hostile").await;

    // The image's files: the union, a directory, a file's text.
    client.goto(&format!("{base}/ui/r/library/busybox:1.36")).await.unwrap();
    click(&client, Locator::Id("browse")).await;
    assert_eq!(first_cells(&client, "files").await, ["bin/", "etc/", "var/"]);
    click(&client, Locator::LinkText("etc/")).await;
    let etc = first_cells(&client, "files").await;
    assert!(
        etc.contains(&"hosts".to_string()) && !etc.contains(&"passwd".to_string()),
        "{etc:?}"
    );
    shot(&client, "05-files").await;
    // One layer's tree: what the upper layer did to /etc.
    click(&client, Locator::LinkText("Layer 2")).await;
    let deleted = text(&client, "#files tr.deleted").await;
    assert!(deleted.contains("passwd") && deleted.contains("deleted"), "{deleted}");
    click(&client, Locator::LinkText("All layers")).await;
    click(&client, Locator::LinkText("hosts")).await;
    assert_eq!(text(&client, "#content").await, "127.0.0.1 localhost");
    assert_eq!(
        client.execute("return typeof window.pwned", vec![]).await.unwrap(),
        json!("undefined")
    );

    // A Windows image's registry: from its files to a key, the values merged from its layers;
    // a hostile value name stays text.
    common::images::push_registry_image(&open, "windows/registry", "v1").await;
    client
        .goto(&format!("{base}/ui/r/windows/registry:v1?files="))
        .await
        .unwrap();
    for link in ["Its registry", "Vendor", "App"] {
        click(&client, Locator::LinkText(link)).await;
    }
    assert_eq!(first_cells(&client, "values").await, ["Count", "New", "Version"]);
    assert!(text(&client, "#values").await.contains("3.0"));
    shot(&client, "06-registry").await;
    client
        .goto(&format!(
            "{base}/ui/r/windows/registry:v1?registry=HKLM%5CSOFTWARE%5CHostile"
        ))
        .await
        .unwrap();
    assert!(
        text(&client, "#values")
            .await
            .contains("<script>window.pwned=1</script>")
    );
    assert_eq!(
        client.execute("return typeof window.pwned", vec![]).await.unwrap(),
        json!("undefined")
    );

    // Delete a tag through the confirmation page.
    client.goto(&format!("{base}/ui/r/library/busybox")).await.unwrap();
    assert_eq!(first_cells(&client, "tags").await, ["1.36", "latest"]);
    click(&client, Locator::Css("a.danger[href$='busybox:latest?delete']")).await;
    assert!(text(&client, "main").await.contains("will be deleted"));
    shot(&client, "06-confirm-delete").await;
    click(&client, Locator::Css("button.danger")).await;
    eventually("back on the repository", || async {
        client.current_url().await.unwrap().path() == "/ui/r/library/busybox"
    })
    .await;
    assert_eq!(first_cells(&client, "tags").await, ["1.36"]);

    // Readable contrast on the main elements.
    let ratios = client
        .execute(
            CONTRAST,
            vec![json!(["body", "a", "th", "h1", "code", ".crumbs", "button"])],
        )
        .await
        .unwrap();
    for (selector, ratio) in ratios.as_object().unwrap() {
        let ratio = ratio.as_f64().unwrap_or_else(|| panic!("{selector} on the page"));
        assert!(ratio >= 4.5, "{selector}: contrast {ratio:.2} under 4.5");
    }

    // Sign out; bob sees only his repository, and alice's are not there for him.
    click(&client, Locator::Css("nav.account button")).await;
    eventually("signed out", || async {
        client.find(Locator::LinkText("Sign in")).await.is_ok()
    })
    .await;
    sign_in(&client, &base, "bob", "b-pass").await;
    assert_eq!(first_cells(&client, "repositories").await, ["secret/app"]);
    client.goto(&format!("{base}/ui/r/library/busybox:1.36")).await.unwrap();
    assert!(
        text(&client, "main")
            .await
            .contains("repository library/busybox is not known")
    );
    shot(&client, "07-other-user").await;
    client.close().await.unwrap();
}
